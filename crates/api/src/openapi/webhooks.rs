//! What errand POSTs to a task's callback, as the document's `webhooks`.

use errand_core::task::WebhookEvent;
use serde_json::{Value, json};

use super::schema_ref;

/// What errand POSTs to a task's `callback.url` (docs/webhooks.md), as an OpenAPI 3.1
/// webhook, so a receiver generated from the document gets the message's type too.
pub(super) fn webhooks(doc: &mut Value) {
    let types: Vec<&str> = WebhookEvent::ALL.iter().map(|e| e.type_name()).collect();
    doc["components"]["schemas"]["WebhookPayload"] = json!({
        "description": "The message a task's callback receives when the task ends.",
        "type": "object",
        "required": ["type", "timestamp", "data"],
        "properties": {
            "type": {"type": "string", "enum": types},
            "timestamp": {"type": "string", "format": "date-time", "description": "When the task ended."},
            "data": {
                "description": "The task's record as it ended (as `GET /v1/tasks/{id}` showed \
                    it then), without `payload`, `callback` and `webhook`.",
                "type": "object",
                "required": ["id", "kind", "queue", "state", "attempt"],
                "properties": {
                    "id": {"type": "string"},
                    "kind": {"type": "string"},
                    "queue": {"type": "string"},
                    "state": {"type": "string", "enum": ["succeeded", "failed", "cancelled"]},
                    "attempt": {"type": "integer", "minimum": 0},
                    "result": {"description": "Set when `succeeded`."},
                    "error": {"anyOf": [schema_ref("TaskError"), {"type": "null"}]},
                },
                "additionalProperties": true,
            },
        },
    });
    let header = |name: &str, description: &str| {
        json!({"name": name, "in": "header", "required": true, "description": description,
               "schema": {"type": "string"}})
    };
    doc["webhooks"] = json!({"taskEnded": {"post": {
        "summary": "A task with a callback ended",
        "description": "Signed per the Standard Webhooks specification: verify \
            `webhook-signature` over `{webhook-id}.{webhook-timestamp}.{raw body}` with a \
            secret from `webhooks.secrets` before trusting the body. Delivered at least once \
            (drop repeats by `webhook-id`); retried with doubling delays until a 2xx answer \
            or the retry window ends.",
        "parameters": [
            header("webhook-id", "The delivery's id, the same on every attempt."),
            header("webhook-timestamp", "Unix seconds of this attempt."),
            header("webhook-signature", "`v1,<base64 HMAC-SHA256>` per configured secret, space-separated."),
        ],
        "requestBody": {"required": true, "content": {"application/json": {"schema": schema_ref("WebhookPayload")}}},
        "responses": {"2XX": {"description": "Received. Any other answer, or none within the timeout, is retried."}},
    }}});
}
