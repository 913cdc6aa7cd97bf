//! What a client call can end in besides success: a refusal with its problem body, no
//! answer, or an answer this client cannot read.

use errand_wire::Problem;

/// Everything a client call can end in besides success.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered and refused: its problem body (or one made from the status when
    /// the body was not problem+json, e.g. from a proxy). `retry_after` is the server's
    /// `Retry-After` in seconds, sent with 503.
    #[error("{} {}: {}", .problem.status, .problem.title, .problem.detail)]
    Api {
        /// The refusal as the server described it (status, type, offending field).
        problem: Problem,
        /// Seconds to wait before trying again, from the `Retry-After` header (sent with
        /// 503 and 429); `None` when the server sent none or it was not a number.
        retry_after: Option<u64>,
    },
    /// No answer: connection refused, DNS, timeout, a stream cut short. Worth retrying
    /// later; see [`Error::is_unreachable`].
    #[error("cannot reach the errand API: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server answered 2xx with a body this client cannot read (a version mismatch).
    #[error("unexpected response body (HTTP {status}): {message}")]
    Decode {
        /// The (successful) HTTP status the unreadable body came with.
        status: u16,
        /// What the JSON decoder found wrong, naming the field or position.
        message: String,
    },
    /// An event stream frame that is not a task event, or a stream that ended before the
    /// task did (a dropped connection is never taken for the task's end). The string says
    /// which.
    #[error("malformed event stream: {0}")]
    Stream(String),
    /// [`ClientBuilder::build`](crate::ClientBuilder::build) was given a base URL that is
    /// not `http://` or `https://` (the string is the URL, trailing `/` removed); no request
    /// was made.
    #[error("base URL `{0}` must start with http:// or https://")]
    InvalidUrl(String),
}

impl Error {
    /// The HTTP status of an API refusal; `None` for every other error (no answer, an
    /// unreadable body, a bad base URL).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { problem, .. } => Some(problem.status),
            _ => None,
        }
    }

    /// The problem body of an API refusal, to read its `kind` or offending `field`; `None`
    /// for every other error.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// True when no server answered (as opposed to one that refused): the cases where a
    /// retry may succeed without changing the request. A 503 is an [`Error::Api`], not this.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Transport(_))
    }

    pub(crate) fn from_transport(e: reqwest::Error) -> Self {
        Self::Transport(e)
    }

    pub(crate) async fn from_response(res: reqwest::Response) -> Self {
        let status = res.status();
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = res.bytes().await.unwrap_or_default();
        let problem = serde_json::from_slice::<Problem>(&body).unwrap_or_else(|_| Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("HTTP error").into(),
            status: status.as_u16(),
            detail: String::from_utf8_lossy(&body).chars().take(200).collect(),
            field: None,
        });
        Self::Api {
            problem,
            retry_after,
        }
    }
}
