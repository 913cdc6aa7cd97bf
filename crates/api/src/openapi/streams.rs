//! The event streams (`GET /v1/tasks/{id}/events`, `GET /v1/workflows/{id}/events`): a
//! string body, with the schema of one event beside it.

use errand_core::task::TaskState;
use serde_json::{Value, json};

use super::schema_ref;

/// `GET /v1/tasks/{id}/events`: OpenAPI 3.1 has no keyword for one event of a stream
/// (3.2's `itemSchema`), and generators read a `text/event-stream` schema as the whole
/// body: an object schema there makes them wait for the stream's end and then fail to parse
/// it as JSON. So the body is a string, and `TaskEvent` (one event, its `data` a
/// `TaskRecord` as JSON text) sits beside it in `x-item-schema`, the 3.2 keyword's meaning
/// under an extension name (`scripts/schemathesis.sh` checks each event against it).
pub(super) fn event_stream(doc: &mut Value) {
    let states: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
    let mut change = states.clone();
    change.push("progress");
    doc["components"]["schemas"]["TaskEvent"] = event(
        "One server-sent event of `GET /v1/tasks/{id}/events`. `event` is the \
            state the task entered, or `progress` for a progress report; `data` is the full \
            task record as JSON. The last event is a terminal state, or `gone` (data `{}`) \
            when the record disappeared.",
        json!({"type": "string", "enum": change}),
        "TaskRecord",
    );
    stream_of(doc, "/v1/tasks/{id}/events", "TaskEvent");
    doc["components"]["schemas"]["WorkflowEvent"] = event(
        "One server-sent event of `GET /v1/workflows/{id}/events`: `workflow` \
            with the whole workflow as JSON, now and on every change of it or a step; the \
            last is the one showing it ended, or `gone` (data `{}`) when it expired.",
        json!({"const": "workflow"}),
        "WorkflowView",
    );
    stream_of(doc, "/v1/workflows/{id}/events", "WorkflowEvent");
}

/// One event of a stream: `event` names it and `data` is a `data` component as JSON text,
/// or it is the `gone` both streams end with when their subject disappeared.
fn event(description: &str, event: Value, data: &str) -> Value {
    json!({
        "description": description,
        "oneOf": [
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": event,
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": schema_ref(data),
                    },
                },
            },
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": "gone"},
                    "data": {"const": "{}"},
                },
            },
        ],
    })
}

/// The 200 of the event stream at `path`: text, each event a `schema` (`x-item-schema`,
/// what OpenAPI 3.2 calls `itemSchema`).
fn stream_of(doc: &mut Value, path: &str, schema: &str) {
    doc["paths"][path]["get"]["responses"]["200"]["content"] = json!({
        "text/event-stream": {
            "schema": {
                "type": "string",
                "description": format!("The event stream as text (`event: <name>` and `data: <json>` \
                    lines, a blank line after each event, `: keep-alive` comments). Each \
                    event is a `{schema}` (see `x-item-schema`)."),
            },
            "x-item-schema": schema_ref(schema),
        },
    });
}
