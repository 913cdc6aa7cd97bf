//! The `Retry-After` middleware: the one place that header is written, for the API's
//! errors and the dashboard's alike.
//!
//! It stands apart from `error.rs` because it needs what an error cannot reach (the app
//! state's `api.retry_after_secs`) and knows both error types; `error.rs` and the dashboard
//! then depend on neither each other nor the state.

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
    web,
};

use crate::{
    error::{ApiError, RetryAfter},
    state::AppState,
    ui::UiError,
};

/// The one writer of `Retry-After`: an error response (API or dashboard) that asks for
/// one gets it here, with the configured `api.retry_after_secs` where the error could not
/// know it. Middleware, because an error renders without the app state.
pub(crate) async fn retry_after(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let configured = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.api.retry_after_secs);
    let mut res = next.call(req).await?;
    let hint = res.response().error().and_then(|e| {
        e.as_error::<ApiError>()
            .and_then(ApiError::retry_after)
            .or_else(|| e.as_error::<UiError>().and_then(|e| e.retry_after()))
    });
    let secs = match hint {
        Some(RetryAfter::Secs(s)) => Some(s),
        Some(RetryAfter::Configured) => configured,
        None => None,
    };
    if let Some(secs) = secs {
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    Ok(res)
}
