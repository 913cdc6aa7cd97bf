//! `StoreError`: what a store call ends in, and which Redis replies mean "not now" (the
//! api's 503 with Retry-After) rather than a fault.

use redis::{ErrorKind, RedisError};

use crate::task::record::CorruptRecord;

/// Why a store call failed; the api maps it to HTTP once, the worker retries on it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached, did not answer in time, or answered "not now" (see
    /// [`Unavailability`]): worth retrying later.
    #[error("redis unavailable: {0}")]
    Unavailable(#[source] RedisError),
    /// Redis refused the command for a reason retrying will not fix (a bug, a wrong type).
    #[error("redis error: {0}")]
    Redis(#[source] RedisError),
    /// A stored record does not decode.
    #[error(transparent)]
    Corrupt(#[from] CorruptRecord),
    /// A script answered something its caller does not expect (the two drifted apart).
    #[error("unexpected reply from a store script: {0}")]
    Protocol(String),
    /// A value errand wrote does not parse back as JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// `redis.*` settings that cannot work (a malformed URL, an unreadable CA file).
    #[error("{0}")]
    Config(String),
}

/// Why Redis cannot serve right now. Every one of these goes away without errand doing
/// anything different (memory is freed, loading ends, a failover completes, a script
/// finishes), so callers wait and retry, and the API answers 503 naming the cause so an
/// operator knows which one to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailability {
    /// No connection, a dropped one, or no reply within `redis.response_timeout_ms`.
    Unreachable,
    /// `OOM`: over `maxmemory` with a no-eviction policy; writes are refused.
    OutOfMemory,
    /// `LOADING`: Redis is loading its dataset (after a restart or a full resync).
    Loading,
    /// `READONLY`: this Redis is a replica (a failover moved the primary elsewhere).
    ReadOnly,
    /// `BUSY`: a script or function has run past `busy-reply-threshold`.
    Busy,
    /// `MASTERDOWN`: a replica that lost its primary and does not serve stale data.
    MasterDown,
    /// `TRYAGAIN` / `CLUSTERDOWN` / a redirect that kept moving: a cluster is resharding,
    /// failing over, or lost a slot's owner.
    TryAgain,
    /// `NOAUTH` / `WRONGPASS` / a failed `AUTH`: the password or ACL user is wrong or
    /// missing. Fixed by the deployment, not by time, but nothing errand does helps either,
    /// so it is reported like the rest instead of failing requests as internal errors.
    AuthFailed,
}

impl Unavailability {
    /// Short, stable name: the API's problem type is `store-<slug>`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Unreachable => "unavailable",
            Self::OutOfMemory => "out-of-memory",
            Self::Loading => "loading",
            Self::ReadOnly => "read-only",
            Self::Busy => "busy",
            Self::MasterDown => "master-down",
            Self::TryAgain => "try-again",
            Self::AuthFailed => "auth-failed",
        }
    }

    /// One sentence an operator can act on.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unreachable => "the task store (Redis) cannot be reached or is too slow",
            Self::OutOfMemory => {
                "the task store (Redis) is out of memory (maxmemory reached) and refuses writes"
            }
            Self::Loading => "the task store (Redis) is loading its dataset",
            Self::ReadOnly => {
                "the task store (Redis) is a read-only replica; writes need the primary"
            }
            Self::Busy => "the task store (Redis) is busy running a long script",
            Self::MasterDown => "the task store (Redis) is a replica that lost its primary",
            Self::TryAgain => "the task store (Redis cluster) asked to try again",
            Self::AuthFailed => {
                "the task store (Redis) refused errand's credentials (check redis.url's user and password)"
            }
        }
    }

    /// The cause of `e`, when it is one that time (or the operator) fixes.
    pub fn of(e: &RedisError) -> Option<Self> {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            return Some(Self::Unreachable);
        }
        match e.kind() {
            ErrorKind::Client | ErrorKind::ClusterConnectionNotFound => {
                return Some(Self::Unreachable);
            }
            ErrorKind::AuthenticationFailed => return Some(Self::AuthFailed),
            _ => {}
        }
        // By the reply's code: OOM and BUSY are not among the client's known kinds, and a
        // script's failing call keeps the code of the command that failed.
        match e.code() {
            Some(code) => Self::of_reply(code, e.detail().unwrap_or_default()),
            // A pipeline (or transaction) failure carries its commands' replies.
            None => e
                .clone()
                .into_server_errors()?
                .iter()
                .find_map(|(_, s)| Self::of_reply(s.code(), s.details().unwrap_or_default())),
        }
    }

    fn of_reply(code: &str, detail: &str) -> Option<Self> {
        match code {
            "OOM" => Some(Self::OutOfMemory),
            "LOADING" => Some(Self::Loading),
            "READONLY" => Some(Self::ReadOnly),
            "BUSY" => Some(Self::Busy),
            "MASTERDOWN" => Some(Self::MasterDown),
            // A cluster's slot owner changing (a failover, a reshard) after the client's own
            // redirects and retries ran out.
            "TRYAGAIN" | "CLUSTERDOWN" | "MOVED" | "ASK" => Some(Self::TryAgain),
            "NOAUTH" | "WRONGPASS" => Some(Self::AuthFailed),
            // Older servers wrap a script's failing call in a generic error.
            "ERR" if detail.contains("OOM command not allowed") => Some(Self::OutOfMemory),
            "ERR" if detail.contains("READONLY") => Some(Self::ReadOnly),
            _ => None,
        }
    }
}

impl StoreError {
    /// Whether the call may succeed if tried again later (the 503 case).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Why the store is unavailable, for an error that [`is_unavailable`](Self::is_unavailable).
    pub fn unavailability(&self) -> Option<Unavailability> {
        match self {
            Self::Unavailable(e) => {
                Some(Unavailability::of(e).unwrap_or(Unavailability::Unreachable))
            }
            _ => None,
        }
    }

    /// A copy for each caller that shared one failed call (batched claims and finishes);
    /// keeps whether it is worth retrying.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Unavailable(e) => Self::Unavailable(e.clone()),
            Self::Redis(e) => Self::Redis(e.clone()),
            other => Self::Protocol(other.to_string()),
        }
    }
}

impl From<redis::ParsingError> for StoreError {
    fn from(e: redis::ParsingError) -> Self {
        Self::Protocol(e.to_string())
    }
}

impl From<RedisError> for StoreError {
    fn from(e: RedisError) -> Self {
        if Unavailability::of(&e).is_some() {
            Self::Unavailable(e)
        } else {
            Self::Redis(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: &str, detail: &str) -> StoreError {
        redis::make_extension_error(code.into(), Some(detail.into())).into()
    }

    /// The replies the integration tests cannot provoke on a single redis-server
    /// (`TRYAGAIN` and `CLUSTERDOWN` need a cluster), beside the ones they do, so the
    /// mapping is checked for all of them.
    #[test]
    fn not_now_replies_are_unavailable_with_their_cause() {
        let cases = [
            (
                "OOM",
                "command not allowed when used memory > 'maxmemory'.",
                Unavailability::OutOfMemory,
            ),
            (
                "LOADING",
                "Redis is loading the dataset in memory",
                Unavailability::Loading,
            ),
            (
                "READONLY",
                "You can't write against a read only replica.",
                Unavailability::ReadOnly,
            ),
            (
                "BUSY",
                "Redis is busy running a script.",
                Unavailability::Busy,
            ),
            (
                "MASTERDOWN",
                "Link with MASTER is down",
                Unavailability::MasterDown,
            ),
            (
                "TRYAGAIN",
                "Multiple keys request during rehashing of slot",
                Unavailability::TryAgain,
            ),
            (
                "CLUSTERDOWN",
                "The cluster is down",
                Unavailability::TryAgain,
            ),
            (
                "NOAUTH",
                "Authentication required.",
                Unavailability::AuthFailed,
            ),
            (
                "WRONGPASS",
                "invalid username-password pair",
                Unavailability::AuthFailed,
            ),
            (
                "ERR",
                "Error running script: OOM command not allowed when used memory > 'maxmemory'",
                Unavailability::OutOfMemory,
            ),
        ];
        for (code, detail, cause) in cases {
            let e = reply(code, detail);
            assert!(e.is_unavailable(), "{code}");
            assert_eq!(e.unavailability(), Some(cause), "{code}");
            assert!(!cause.slug().is_empty() && !cause.describe().is_empty());
        }
    }

    #[test]
    fn other_replies_are_not_unavailable() {
        for (code, detail) in [
            ("ERR", "unknown command"),
            (
                "WRONGTYPE",
                "Operation against a key holding the wrong kind of value",
            ),
            (
                "NOPERM",
                "this user has no permissions to run the 'evalsha' command",
            ),
        ] {
            let e = reply(code, detail);
            assert!(!e.is_unavailable(), "{code}");
            assert_eq!(e.unavailability(), None);
        }
    }
}
