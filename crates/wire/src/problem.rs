//! The one error body every refusal carries.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type.
    #[serde(rename = "type")]
    #[schema(example = "https://errand.dev/problems/invalid-field")]
    pub kind: String,
    #[schema(example = "Invalid field")]
    pub title: String,
    #[schema(example = 422, minimum = 400, maximum = 599)]
    pub status: u16,
    #[schema(example = "payload.duration_secs: invalid type: string \"five\", expected f64")]
    pub detail: String,
    /// The offending field, as a JSON path into the request (or `id` for the path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "payload.duration_secs")]
    pub field: Option<String>,
}
