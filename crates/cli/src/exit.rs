//! Exit codes: part of the CLI's contract (docs/client.md lists them). A command that
//! follows a task to its end (`submit --wait`, `watch`) exits with the task's outcome.

use errand_client::TaskState;

/// The command did what was asked; a followed task succeeded.
pub(crate) const OK: u8 = 0;
/// A followed task ended `failed`.
pub(crate) const TASK_FAILED: u8 = 1;
/// Bad command line (clap's own code for usage errors, kept for every usage error).
pub(crate) const USAGE: u8 = 2;
/// A followed task ended `cancelled`.
pub(crate) const TASK_CANCELLED: u8 = 3;
/// No server answered, or it answered 503 (Redis down) or 429 (rate limit): worth
/// retrying later.
pub(crate) const UNREACHABLE: u8 = 4;
/// The server refused the request (a 4xx: invalid field, not found, conflict, bad key).
pub(crate) const REFUSED: u8 = 5;
/// The followed task's record vanished (expired) before it could be read to its end.
pub(crate) const GONE: u8 = 6;
/// Anything else: an answer this CLI cannot read, a broken event stream.
pub(crate) const INTERNAL: u8 = 70;

pub(crate) fn for_state(s: TaskState) -> u8 {
    match s {
        TaskState::Failed => TASK_FAILED,
        TaskState::Cancelled => TASK_CANCELLED,
        _ => OK,
    }
}

/// What can go wrong in the CLI itself, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{}", describe(.0))]
    Client(#[from] errand_client::Error),
    #[error("task {0}: its record is gone (expired or deleted)")]
    Gone(String),
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => USAGE,
            Self::Gone(_) => GONE,
            Self::Io(_) => INTERNAL,
            Self::Client(e) => match e {
                errand_client::Error::Transport(_) => UNREACHABLE,
                errand_client::Error::Api { problem, .. }
                    if matches!(problem.status, 429 | 503) =>
                {
                    UNREACHABLE
                }
                errand_client::Error::Api { .. } => REFUSED,
                errand_client::Error::InvalidUrl(_) => USAGE,
                _ => INTERNAL,
            },
        }
    }
}

/// One readable line: the server's detail and field, or the innermost transport cause
/// (reqwest's own message is a generic "error sending request").
fn describe(e: &errand_client::Error) -> String {
    match e {
        errand_client::Error::Api {
            problem,
            retry_after,
        } => {
            let mut s = format!("{} ({})", problem.detail, problem.status);
            if let Some(f) = &problem.field {
                s.push_str(&format!(" [field: {f}]"));
            }
            if let Some(secs) = retry_after {
                s.push_str(&format!("; retry after {secs} s"));
            }
            s
        }
        errand_client::Error::Transport(t) => {
            let mut cause: &dyn std::error::Error = t;
            while let Some(next) = cause.source() {
                cause = next;
            }
            let url = t.url().map(|u| format!(" at {u}")).unwrap_or_default();
            format!("cannot reach the errand API{url}: {cause} (set --url or ERRAND_URL)")
        }
        other => other.to_string(),
    }
}
