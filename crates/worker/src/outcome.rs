//! What an ended attempt means for its task: errand's retry policy, as one pure function.
//!
//! The runner first runs an attempt to an [`Ended`], then asks [`outcome`] what to record.
//! Keeping the decision free of I/O, clocks and randomness (the time and the backoff's
//! jitter are inputs) is what lets every row of the policy be tested as a table below.

use chrono::{DateTime, Utc};
use errand_core::{
    store::{Claimed, Outcome},
    task::TaskError,
};
use errand_kinds::{Failure, FailureKind};
use serde_json::Value;

/// How an attempt ended, before any policy is applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ended {
    /// The stored payload does not decode; the attempt never started.
    Corrupt(String),
    /// The task's code returned its output.
    Returned(Value),
    /// The task's code returned a failure (not a cancel it was asked for: see `Cancelled`).
    Failed(Failure),
    /// The attempt ran past its `timeout_secs` (given here) and was stopped.
    TimedOut(u64),
    /// The task's token was cancelled (a cancel request) and the attempt stopped; the
    /// message is the task's own when it returned `cancelled`, else errand's.
    Cancelled(String),
    /// The task's code panicked; the panic's message.
    Panicked(String),
    /// The attempt's tokio task was aborted without panicking.
    Aborted,
    /// Shutdown's grace period ran out while it ran: the attempt is left to its lease.
    Abandoned,
    /// The task no longer holds this attempt's claim (its lease lapsed and it was taken
    /// over, or it was given back or retried): stopped, nothing recorded.
    Lost,
}

/// The settings the decision depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// `tasks.max_result_bytes`: a larger output fails the task.
    pub max_result_bytes: usize,
}

/// What to record for an attempt of `claimed` that ended as `ended`, at `now`; `None` when
/// nothing is recorded (abandoned at shutdown: its lease lapses and another worker re-runs
/// it). `jitter`, a factor in [0.5, 1.0), scales a retry's backoff (see [`backoff`]).
///
/// Retryable failures, timeouts and panics are retried while attempts remain; a cancel,
/// a permanent failure, a corrupt record and an oversized result end the task at once.
pub(crate) fn outcome(
    ended: Ended,
    claimed: &Claimed,
    policy: Policy,
    now: DateTime<Utc>,
    jitter: f64,
) -> Option<Outcome> {
    let failure = match ended {
        Ended::Abandoned | Ended::Lost => return None,
        Ended::Corrupt(reason) => {
            return Some(Outcome::Failed(error(
                FailureKind::CorruptRecord,
                format!("the stored task cannot be read: {reason}"),
            )));
        }
        Ended::Returned(result) => {
            let size = result.to_string().len();
            return Some(if size > policy.max_result_bytes {
                Outcome::Failed(error(
                    FailureKind::ResultTooLarge,
                    format!(
                        "result is {size} bytes; the limit is {} (tasks.max_result_bytes)",
                        policy.max_result_bytes
                    ),
                ))
            } else {
                Outcome::Succeeded(result)
            });
        }
        Ended::Cancelled(message) => {
            return Some(Outcome::Cancelled(error(FailureKind::Cancelled, message)));
        }
        Ended::Failed(f) => f,
        Ended::TimedOut(limit) => Failure::retryable(
            FailureKind::Timeout,
            format!("attempt ran longer than {limit} s"),
        ),
        Ended::Panicked(message) => Failure::retryable(FailureKind::Panic, message),
        Ended::Aborted => Failure::retryable(FailureKind::Aborted, "the attempt was aborted"),
    };
    let retry = failure.retryable && claimed.attempt < claimed.max_attempts;
    let error = TaskError::from(failure);
    Some(if retry {
        let delay = backoff(claimed.attempt, jitter);
        Outcome::Retry {
            error,
            delay,
            at: now + delay,
        }
    } else {
        Outcome::Failed(error)
    })
}

fn error(kind: FailureKind, message: String) -> TaskError {
    TaskError {
        kind: kind.into(),
        message,
    }
}

pub(crate) use errand_core::task::{backoff, jitter};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claimed(attempt: u32, max_attempts: u32) -> Claimed {
        Claimed {
            id: "t".into(),
            queue: "default".into(),
            token: "01JTOKEN.1".into(),
            kind: "noop".into(),
            payload: Ok(Value::Null),
            attempt,
            max_attempts,
            timeout_secs: None,
            traceparent: None,
            queued_at: None,
            workflow: None,
            inputs: None,
        }
    }

    /// What a row expects, without a retry's times (checked separately).
    #[derive(Debug, PartialEq)]
    enum Want {
        Nothing,
        Succeeded(Value),
        Failed(String, String),
        Retry(String, String),
        Cancelled(String, String),
    }

    fn failed(kind: &str, message: &str) -> Want {
        Want::Failed(kind.into(), message.into())
    }

    fn retry(kind: &str, message: &str) -> Want {
        Want::Retry(kind.into(), message.into())
    }

    fn cancelled(kind: &str, message: &str) -> Want {
        Want::Cancelled(kind.into(), message.into())
    }

    fn seen(o: Option<Outcome>) -> Want {
        match o {
            None => Want::Nothing,
            Some(Outcome::Succeeded(v)) => Want::Succeeded(v),
            Some(Outcome::Failed(e)) => Want::Failed(e.kind, e.message),
            Some(Outcome::Cancelled(e)) => Want::Cancelled(e.kind, e.message),
            Some(Outcome::Retry { error, .. }) => Want::Retry(error.kind, error.message),
        }
    }

    #[test]
    fn every_row_of_the_policy() {
        let policy = Policy {
            max_result_bytes: 10,
        };
        let big = json!("0123456789");
        let rows: Vec<(&str, Ended, (u32, u32), Want)> = vec![
            (
                "success",
                Ended::Returned(json!(1)),
                (1, 3),
                Want::Succeeded(json!(1)),
            ),
            (
                "result at the limit",
                Ended::Returned(json!("01234567")),
                (1, 3),
                Want::Succeeded(json!("01234567")),
            ),
            (
                "result over the limit, attempts left",
                Ended::Returned(big),
                (1, 3),
                failed(
                    "result_too_large",
                    "result is 12 bytes; the limit is 10 (tasks.max_result_bytes)",
                ),
            ),
            (
                "retryable failure, attempts left",
                Ended::Failed(Failure::retryable("http_status", "503")),
                (1, 3),
                retry("http_status", "503"),
            ),
            (
                "retryable failure, attempts exhausted",
                Ended::Failed(Failure::retryable("http_status", "503")),
                (3, 3),
                failed("http_status", "503"),
            ),
            (
                "permanent failure, attempts left",
                Ended::Failed(Failure::permanent("invalid_payload", "bad")),
                (1, 3),
                failed("invalid_payload", "bad"),
            ),
            (
                "a task's own `cancelled` without a cancel request is a failure",
                Ended::Failed(Failure::permanent("cancelled", "gave up")),
                (1, 3),
                failed("cancelled", "gave up"),
            ),
            (
                "timeout, attempts left",
                Ended::TimedOut(30),
                (1, 2),
                retry("timeout", "attempt ran longer than 30 s"),
            ),
            (
                "timeout, attempts exhausted",
                Ended::TimedOut(30),
                (2, 2),
                failed("timeout", "attempt ran longer than 30 s"),
            ),
            (
                "cancel, attempts left",
                Ended::Cancelled("cancelled by request".into()),
                (1, 3),
                cancelled("cancelled", "cancelled by request"),
            ),
            (
                "cancel noticed by the task",
                Ended::Cancelled("sleep was cancelled".into()),
                (1, 3),
                cancelled("cancelled", "sleep was cancelled"),
            ),
            (
                "panic, attempts left",
                Ended::Panicked("task panicked: boom".into()),
                (1, 3),
                retry("panic", "task panicked: boom"),
            ),
            (
                "panic, attempts exhausted",
                Ended::Panicked("task panicked: boom".into()),
                (3, 3),
                failed("panic", "task panicked: boom"),
            ),
            (
                "aborted, attempts left",
                Ended::Aborted,
                (1, 3),
                retry("aborted", "the attempt was aborted"),
            ),
            (
                "aborted, attempts exhausted",
                Ended::Aborted,
                (1, 1),
                failed("aborted", "the attempt was aborted"),
            ),
            (
                "abandoned at shutdown",
                Ended::Abandoned,
                (1, 3),
                Want::Nothing,
            ),
            (
                "claim lost to another worker",
                Ended::Lost,
                (1, 1),
                Want::Nothing,
            ),
            (
                "corrupt record, attempts left",
                Ended::Corrupt("expected value at line 1".into()),
                (1, 3),
                failed(
                    "corrupt_record",
                    "the stored task cannot be read: expected value at line 1",
                ),
            ),
        ];
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for (row, ended, (attempt, max), expected) in rows {
            let got = seen(outcome(ended, &claimed(attempt, max), policy, now, 0.5));
            assert_eq!(got, expected, "{row}");
        }
    }

    #[test]
    fn a_retry_waits_the_jittered_backoff_of_its_attempt() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let policy = Policy {
            max_result_bytes: 1 << 20,
        };
        let o = outcome(Ended::TimedOut(1), &claimed(2, 5), policy, now, 0.75);
        let Some(Outcome::Retry { delay, at, .. }) = o else {
            panic!("{o:?}")
        };
        assert_eq!(delay.num_milliseconds(), 1500, "attempt 2: 2 s × 0.75");
        assert_eq!(at, now + delay);
    }

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        for (attempt, lo, hi) in [
            (1, 500, 1000),
            (2, 1000, 2000),
            (4, 4000, 8000),
            (30, 150_000, 300_000),
        ] {
            assert_eq!(backoff(attempt, 0.5).num_milliseconds(), lo, "{attempt}");
            for _ in 0..50 {
                let ms = backoff(attempt, jitter()).num_milliseconds();
                assert!((lo..hi).contains(&ms), "attempt {attempt}: {ms} ms");
            }
        }
    }
}
