//! A task's id: server-made (UUIDv7) or the client's, in a key- and URL-safe alphabet.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A task's id: server-made (UUIDv7, so ids sort by creation time) or given by the client,
/// which makes the submit idempotent. Restricted to a URL- and key-safe alphabet so it can
/// sit in a path segment and a Redis key unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskId(String);

/// An id that is empty, too long, or has characters outside `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("a task id is 1 to 128 characters from A-Z a-z 0-9 . _ : -")]
pub struct InvalidTaskId;

impl TaskId {
    /// Longest id a client may choose (an idempotency key, an order number…).
    pub const MAX_LEN: usize = 128;

    /// A fresh id (UUIDv7: sorts by creation time).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Validates a client-chosen id (or `Idempotency-Key`).
    pub fn parse(s: &str) -> Result<Self, InvalidTaskId> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidTaskId)
        }
    }

    /// The id as stored and served.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TaskId {
    type Error = InvalidTaskId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TaskId> for String {
    fn from(id: TaskId) -> Self {
        id.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_increase() {
        let a = TaskId::generate();
        let b = TaskId::generate();
        assert!(TaskId::parse(a.as_str()).is_ok());
        assert!(a.as_str() < b.as_str(), "UUIDv7 sorts by time");
    }

    #[test]
    fn rejects_unsafe_or_oversized_ids() {
        for bad in ["", "a b", "a/b", "é", "{x}", &"x".repeat(129)] {
            assert_eq!(TaskId::parse(bad), Err(InvalidTaskId), "{bad:?}");
        }
        assert!(TaskId::parse("celery123").is_ok());
        assert!(TaskId::parse("order-42:retry_1.x").is_ok());
    }
}
