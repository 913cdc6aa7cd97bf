use serde::Deserialize;

/// A problem+json body (RFC 9457) as errand's API sends it on every refusal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Problem {
    /// A URI naming the problem type, e.g. `https://errand.dev/problems/invalid-field`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The offending field, as a JSON path into the request (`id` for the path).
    #[serde(default)]
    pub field: Option<String>,
}

/// Everything a client call can end in besides success.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered and refused: its problem body (or one made from the status when
    /// the body was not problem+json, e.g. from a proxy). `retry_after` is the server's
    /// `Retry-After` in seconds, sent with 503.
    #[error("{} {}: {}", .problem.status, .problem.title, .problem.detail)]
    Api {
        problem: Problem,
        retry_after: Option<u64>,
    },
    /// No answer: connection refused, DNS, timeout, a stream cut short.
    #[error("cannot reach the errand API: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server answered 2xx with a body this client cannot read (a version mismatch).
    #[error("unexpected response body (HTTP {status}): {message}")]
    Decode { status: u16, message: String },
    /// An event stream frame that is not a task event.
    #[error("malformed event stream: {0}")]
    Stream(String),
    #[error("base URL `{0}` must start with http:// or https://")]
    InvalidUrl(String),
}

impl Error {
    /// The HTTP status of an API refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { problem, .. } => Some(problem.status),
            _ => None,
        }
    }

    /// The problem body of an API refusal.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// True when no server answered (as opposed to one that refused).
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
