//! A queue's name, checked once at the edge.

use std::fmt;

/// A queue's name: it names Redis keys and sits in URL paths unescaped, hence the short,
/// safe alphabet. Checked once at the edge (API body, path, query; dashboard filter).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueName(String);

/// Why a queue name was refused; the text is what the API sends back.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("1 to 64 characters from A-Z a-z 0-9 _ . -")]
pub struct InvalidQueueName;

impl QueueName {
    /// The longest name accepted.
    pub const MAX_LEN: usize = 64;
    /// The rule as a regular expression, as the OpenAPI documents state it.
    pub const PATTERN: &'static str = "^[A-Za-z0-9_.-]{1,64}$";
    /// Where a task goes when its submit names no queue.
    pub const DEFAULT: &'static str = "default";

    /// Checks `s` against the rule.
    pub fn parse(s: &str) -> Result<Self, InvalidQueueName> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidQueueName)
        }
    }

    /// The name, as the store takes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<QueueName> for String {
    fn from(q: QueueName) -> Self {
        q.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_safe_alphabet_up_to_the_limit() {
        for good in [
            "default",
            "a",
            "Mail_out.v2-eu",
            &"q".repeat(QueueName::MAX_LEN),
        ] {
            assert_eq!(QueueName::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "a b",
            "a:b",
            "a/b",
            "é",
            &"q".repeat(QueueName::MAX_LEN + 1),
        ] {
            assert_eq!(QueueName::parse(bad), Err(InvalidQueueName), "{bad:?}");
        }
        assert!(QueueName::parse(QueueName::DEFAULT).is_ok());
    }

    #[test]
    fn the_pattern_states_the_same_length() {
        assert!(
            QueueName::PATTERN.ends_with(&format!("{{1,{}}}$", QueueName::MAX_LEN)),
            "{}",
            QueueName::PATTERN
        );
    }
}
