//! `gather`: returns its payload and its workflow inputs (its dependencies' ends, by step).
//! The reduce step of the docs' workflows, and what their tests read results through; a
//! task outside a workflow gets `null` inputs. Idempotent.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::{Failure, TaskContext, TaskKind};

/// The `gather` kind's [`TaskKind`] impl; the catalog registers it.
#[derive(Debug)]
pub struct Gather;

/// Payload of the `gather` kind: any JSON value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Value, example = json!({"report": "daily"}))]
pub struct GatherPayload(pub Value);

/// Result of the `gather` kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct GatherResult {
    /// Its payload, unchanged.
    #[schema(value_type = Value)]
    pub payload: Value,
    /// Its inputs as the step got them: `{"<step>": {"id", "state", "result" | "error"}}`;
    /// null outside a workflow.
    #[schema(value_type = Value)]
    pub inputs: Value,
}

impl TaskKind for Gather {
    type Payload = GatherPayload;
    type Output = GatherResult;
    const NAME: &'static str = "gather";
    const SUMMARY: &'static str =
        "Returns its payload and its workflow inputs (its dependencies' results): a reduce step.";
    const IDEMPOTENT: bool = true;

    fn example() -> Value {
        json!({"report": "daily"})
    }

    async fn run(ctx: TaskContext, payload: GatherPayload) -> Result<GatherResult, Failure> {
        Ok(GatherResult {
            payload: payload.0,
            inputs: ctx.inputs().cloned().unwrap_or(Value::Null),
        })
    }
}
