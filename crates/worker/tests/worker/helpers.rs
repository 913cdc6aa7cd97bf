//! What several of the worker's suites read off a task record.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// A record's RFC 3339 time field.
pub(crate) fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

/// A record's `id`.
pub(crate) fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}
