//! The one place errors become HTTP: every error leaves as `application/problem+json`
//! (RFC 9457). Internal causes are logged, never sent.

use actix_web::{HttpResponse, ResponseError, http::StatusCode, http::header};
use errand_core::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "payload.duration_secs")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request could not be read (malformed JSON, wrong type, bad path or query).
    #[error("{detail}")]
    BadRequest {
        field: Option<String>,
        detail: String,
    },
    /// 422: well-formed, but a value is not acceptable (unknown kind, invalid payload).
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    /// 401: API keys are configured and the request had none that matched.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// 403: a valid key whose scope does not cover this request.
    #[error("{0}")]
    Forbidden(String),
    /// 429 + Retry-After: this caller submitted more than `api.rate_limit` allows.
    #[error(
        "submit rate limit of {per_sec} tasks/s per API key (api.rate_limit) reached; retry in {retry_after_secs} s"
    )]
    RateLimited { retry_after_secs: u64, per_sec: f64 },
    /// 404: no task with that id (never existed, or its record expired).
    #[error("no task `{0}`")]
    NotFound(String),
    /// 404: the task existed, but its record expired (its result TTL ran out).
    #[error("task `{id}` expired at {at}; its record was kept for its result TTL")]
    Expired { id: String, at: String },
    /// 409: the task is in a state that does not allow this (cancel a finished task…).
    #[error("{0}")]
    Conflict(String),
    /// 404: no schedule with that id.
    #[error("no schedule `{0}`")]
    ScheduleNotFound(String),
    /// 409: a schedule with that id exists, defined differently.
    #[error("{0}")]
    ScheduleExists(String),
    /// 404: no such route.
    #[error("no route {0}")]
    RouteNotFound(String),
    /// 413: body or payload over the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: the body is not JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 503 + Retry-After: Redis is unreachable, too slow, or answered "not now" (out of
    /// memory, loading, read-only replica, busy script…); the request can be retried. The
    /// problem type names the cause (`store-out-of-memory`, `store-read-only`, …).
    #[error("{reason}; retry shortly")]
    Unavailable {
        retry_after_secs: u64,
        /// The cause's slug (`Unavailability::slug`).
        cause: &'static str,
        reason: &'static str,
    },
    /// 503 + Retry-After: this API process is at a capacity limit of its own (not Redis).
    #[error("{detail}")]
    Busy {
        detail: String,
        retry_after_secs: u64,
    },
    /// 500: a bug or corrupt data; details are in the server log only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn store(e: StoreError, retry_after_secs: u64) -> Self {
        if let Some(cause) = e.unavailability() {
            tracing::warn!(error = %e, cause = cause.slug(), "redis unavailable");
            Self::Unavailable {
                retry_after_secs,
                cause: cause.slug(),
                reason: cause.describe(),
            }
        } else {
            Self::Internal(e.into())
        }
    }

    /// Maps a body-reading failure (over `api.max_body_bytes`, or a broken stream).
    pub fn body(e: actix_web::Error) -> Self {
        if e.as_error::<actix_web::error::PayloadError>()
            .is_some_and(|p| matches!(p, actix_web::error::PayloadError::Overflow))
        {
            Self::TooLarge("request body over api.max_body_bytes".into())
        } else {
            Self::BadRequest {
                field: None,
                detail: format!("cannot read body: {e}"),
            }
        }
    }

    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    fn slug_and_title(&self) -> (String, &'static str) {
        let (slug, title) = match self {
            Self::BadRequest { .. } => ("bad-request", "Malformed request"),
            Self::Invalid { .. } => ("invalid-field", "Invalid field"),
            Self::Unauthorized => ("unauthorized", "Unauthorized"),
            Self::Forbidden(_) => ("forbidden", "Forbidden"),
            Self::RateLimited { .. } => ("rate-limited", "Too many requests"),
            Self::NotFound(_) => ("task-not-found", "Task not found"),
            Self::Expired { .. } => ("task-expired", "Task expired"),
            Self::Conflict(_) => ("conflict", "Illegal transition"),
            Self::RouteNotFound(_) => ("not-found", "Not found"),
            Self::ScheduleNotFound(_) => ("schedule-not-found", "Schedule not found"),
            Self::ScheduleExists(_) => ("schedule-exists", "Schedule exists"),
            Self::TooLarge(_) => ("too-large", "Payload too large"),
            Self::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            Self::Unavailable { cause, .. } => {
                return (format!("store-{cause}"), "Service unavailable");
            }
            Self::Busy { .. } => ("busy", "At capacity"),
            Self::Internal(_) => ("internal", "Internal error"),
        };
        (slug.to_owned(), title)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) | Self::RouteNotFound(_) | Self::Expired { .. } => {
                StatusCode::NOT_FOUND
            }
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::ScheduleNotFound(_) => StatusCode::NOT_FOUND,
            Self::ScheduleExists(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(e) = self {
            tracing::error!(error = ?e, "internal error");
        }
        let status = self.status_code();
        let (slug, title) = self.slug_and_title();
        let field = match self {
            Self::BadRequest { field, .. } => field.clone(),
            Self::Invalid { field, .. } => Some(field.clone()),
            _ => None,
        };
        let detail = match self {
            Self::Invalid { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        let body = Problem {
            kind: format!("https://errand.dev/problems/{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail,
            field,
        };
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Self::Unavailable {
            retry_after_secs, ..
        }
        | Self::Busy {
            retry_after_secs, ..
        }
        | Self::RateLimited {
            retry_after_secs, ..
        } = self
        {
            res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if matches!(self, Self::Unauthorized) {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.body(serde_json::to_string(&body).unwrap_or_default())
    }
}
