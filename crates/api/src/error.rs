//! The one place errors become HTTP: every error leaves as `application/problem+json`
//! (RFC 9457). Internal causes are logged, never sent.
//!
//! Handlers return `Result<_, ApiError>` and use `?` on store calls ([`From<StoreError>`]).
//! Each variant's status, problem type and title are one row of [`ApiError::meta`]; the
//! `Retry-After` header is written by the `retry_after` middleware alone (`retry_after.rs`),
//! because the configured hint (`api.retry_after_secs`) lives in the app state, which an
//! error cannot reach: so this module knows neither the state nor the dashboard.

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use errand_core::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Problem {
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

/// Every way a request can fail, each with its own problem type (see [`ApiError::meta`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
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
    /// 404: an HTTP worker id that is not registered (never, or its registration lapsed).
    #[error("worker `{0}` is not registered (its registration lapsed?): register again")]
    WorkerUnknown(String),
    /// 409: an HTTP worker's report whose claim token no longer holds the task.
    #[error("{0}")]
    StaleClaim(String),
    /// 404: no kind of that name in the registry.
    #[error("no kind `{0}` in the registry")]
    KindNotFound(String),
    /// 404: no bulk action of that id on the queue (or its record expired).
    #[error("no bulk action `{0}` on this queue (or its record expired)")]
    BulkNotFound(String),
    /// 404: no workflow of that id (never, or it ended longer ago than its result TTL).
    #[error("no workflow `{0}` (never submitted, or ended longer ago than its result_ttl_secs)")]
    WorkflowNotFound(String),
    /// 409: a live worker runs the kind, so it cannot be removed.
    #[error("{0}")]
    KindInUse(String),
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
    /// 503 + Retry-After (`api.retry_after_secs`): Redis is unreachable, too slow, or
    /// answered "not now" (out of memory, loading, read-only replica, busy script…); the
    /// request can be retried. The problem type names the cause (`store-out-of-memory`,
    /// `store-read-only`, …).
    #[error("{reason}; retry shortly")]
    Unavailable {
        /// `store-` and the cause's slug (`Unavailability::slug`): the problem type.
        slug: String,
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

/// When a client may try again, for the responses that say (`Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryAfter {
    /// Known where the error arose (a rate-limit bucket, a full registry).
    Secs(u64),
    /// Nobody knows how long Redis stays away: `api.retry_after_secs`.
    Configured,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let Some(cause) = e.unavailability() {
            tracing::warn!(error = %e, cause = cause.slug(), "redis unavailable");
            Self::Unavailable {
                slug: format!("store-{}", cause.slug()),
                reason: cause.describe(),
            }
        } else {
            Self::Internal(e.into())
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::from(e).into()
    }
}

impl ApiError {
    /// Maps a body-reading failure (over `api.max_body_bytes`, or a broken stream).
    pub(crate) fn body(e: actix_web::Error) -> Self {
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

    pub(crate) fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// The table: each variant's status, problem type slug and title.
    fn meta(&self) -> (StatusCode, &str, &'static str) {
        match self {
            Self::BadRequest { .. } => {
                (StatusCode::BAD_REQUEST, "bad-request", "Malformed request")
            }
            Self::Invalid { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "Invalid field",
            ),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "task-not-found", "Task not found"),
            Self::Expired { .. } => (StatusCode::NOT_FOUND, "task-expired", "Task expired"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Illegal transition"),
            Self::RouteNotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::ScheduleNotFound(_) => (
                StatusCode::NOT_FOUND,
                "schedule-not-found",
                "Schedule not found",
            ),
            Self::ScheduleExists(_) => (StatusCode::CONFLICT, "schedule-exists", "Schedule exists"),
            Self::WorkerUnknown(_) => (StatusCode::NOT_FOUND, "worker-unknown", "Worker unknown"),
            Self::StaleClaim(_) => (StatusCode::CONFLICT, "stale-claim", "Stale claim"),
            Self::KindNotFound(_) => (StatusCode::NOT_FOUND, "kind-not-found", "Kind not found"),
            Self::KindInUse(_) => (StatusCode::CONFLICT, "kind-in-use", "Kind in use"),
            Self::WorkflowNotFound(_) => (
                StatusCode::NOT_FOUND,
                "workflow-not-found",
                "Workflow not found",
            ),
            Self::BulkNotFound(_) => (
                StatusCode::NOT_FOUND,
                "bulk-not-found",
                "Bulk action not found",
            ),
            Self::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Payload too large",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::Unavailable { slug, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, slug, "Service unavailable")
            }
            Self::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy", "At capacity"),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    /// Whether the response carries `Retry-After`, and with what (written by the
    /// `retry_after` middleware).
    pub(crate) fn retry_after(&self) -> Option<RetryAfter> {
        match self {
            Self::RateLimited {
                retry_after_secs, ..
            }
            | Self::Busy {
                retry_after_secs, ..
            } => Some(RetryAfter::Secs(*retry_after_secs)),
            Self::Unavailable { .. } => Some(RetryAfter::Configured),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.meta().0
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(e) = self {
            tracing::error!(error = ?e, "internal error");
        }
        let (status, slug, title) = self.meta();
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
        if matches!(self, Self::Unauthorized) {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.body(serde_json::to_string(&body).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_store_is_a_503_naming_the_cause_with_the_configured_retry() {
        let e: ApiError = StoreError::from(redis::make_extension_error(
            "LOADING".into(),
            Some("Redis is loading the dataset in memory".into()),
        ))
        .into();
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.meta().1, "store-loading");
        assert_eq!(e.retry_after(), Some(RetryAfter::Configured));
    }

    #[test]
    fn any_other_store_error_is_internal_without_a_retry() {
        let e: ApiError = StoreError::Protocol("bad reply".into()).into();
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.meta().1, "internal");
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn own_limits_carry_their_own_retry() {
        let limited = ApiError::RateLimited {
            retry_after_secs: 3,
            per_sec: 1.0,
        };
        assert_eq!(limited.status_code(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.retry_after(), Some(RetryAfter::Secs(3)));
        let busy = ApiError::Busy {
            detail: "full".into(),
            retry_after_secs: 7,
        };
        assert_eq!(busy.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.retry_after(), Some(RetryAfter::Secs(7)));
    }
}
