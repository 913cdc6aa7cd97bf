//! `noop`: returns its payload. For benchmarks and smoke tests: it measures errand's own
//! overhead, nothing else. Idempotent.

use serde_json::{Value, json};

use crate::{Failure, TaskContext, TaskKind};

pub struct Noop;

impl TaskKind for Noop {
    /// Any JSON value.
    type Payload = Value;
    const NAME: &'static str = "noop";
    const SUMMARY: &'static str =
        "Returns its payload as the result; measures errand's own overhead.";
    const IDEMPOTENT: bool = true;

    fn example() -> Value {
        json!({"i": 123})
    }

    async fn run(_ctx: TaskContext, payload: Value) -> Result<Value, Failure> {
        Ok(payload)
    }
}
