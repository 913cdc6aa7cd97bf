//! `noop`: returns its payload. For benchmarks and smoke tests: it measures errand's own
//! overhead, nothing else. Idempotent.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::{Failure, TaskContext, TaskKind};

/// The `noop` kind's [`TaskKind`] impl; the catalog registers it.
#[derive(Debug)]
pub struct Noop;

/// Payload of the `noop` kind: any JSON value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Value, example = json!({"i": 123}))]
pub struct NoopPayload(pub Value);

/// Result of the `noop` kind: its payload, unchanged.
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Value, example = json!({"i": 123}))]
pub struct NoopResult(pub Value);

impl TaskKind for Noop {
    type Payload = NoopPayload;
    type Output = NoopResult;
    const NAME: &'static str = "noop";
    const SUMMARY: &'static str =
        "Returns its payload as the result; measures errand's own overhead.";
    const IDEMPOTENT: bool = true;

    fn example() -> Value {
        json!({"i": 123})
    }

    async fn run(_ctx: TaskContext, payload: NoopPayload) -> Result<NoopResult, Failure> {
        Ok(NoopResult(payload.0))
    }
}
