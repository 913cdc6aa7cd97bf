//! Who may do what, applied to each request: the guard middleware (a key of a sufficient
//! scope on the routes that need one) and the charge against the caller's rate limit.
//!
//! # Layout
//! - `keys`: the configured keys as digests, and the `Caller` a presented key identifies.
//! - `scope`: which requests need a key, and of which scope.
//! - `rate_limit`: the per-caller token buckets.
//!
//! The app state holds the keys and the buckets, and this module reads them from it; the
//! parts it applies know nothing of the state, so the state depends on them and not on
//! this module.

pub(crate) mod keys;
pub(crate) mod rate_limit;
pub(crate) mod scope;

use std::{net::IpAddr, time::Instant};

use actix_web::{
    HttpMessage, HttpRequest,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
    web,
};
use errand_core::settings::Scope;

pub(crate) use keys::Keys;
pub(crate) use rate_limit::RateLimiter;
pub(crate) use scope::needs_key;

use crate::{error::ApiError, state::AppState};
use keys::Caller;
use scope::required_scope;

/// The guard: with keys configured, a guarded route needs `Authorization: Bearer <key>`
/// of a sufficient scope (401 without a valid key, 403 with a weaker one).
pub(crate) async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let caller = if state.keys.is_empty() {
        Ok(Caller {
            id: format!("addr:{}", peer_ip(req.request())),
            scope: Scope::Admin,
        })
    } else if needs_key(req.path()) {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented.and_then(|p| state.keys.identify(p)) {
            None => Err(ApiError::Unauthorized),
            Some(c) => {
                let needed = required_scope(req.method(), req.path());
                if c.scope.allows(needed) {
                    Ok(c)
                } else {
                    Err(ApiError::Forbidden(format!(
                        "this API key's scope is `{}`; {} {} needs `{}`",
                        c.scope.as_str(),
                        req.method(),
                        req.path(),
                        needed.as_str()
                    )))
                }
            }
        }
    } else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    match caller {
        Ok(c) => {
            req.extensions_mut().insert(c);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(e) => {
            let res = req.into_response(actix_web::ResponseError::error_response(&e));
            Ok(res.map_into_right_body())
        }
    }
}

fn peer_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
        .to_string()
}

/// Charges the request's caller for `tasks` submitted tasks (no-op when the limit is off).
pub(crate) fn charge(state: &AppState, req: &HttpRequest, tasks: usize) -> Result<(), ApiError> {
    let Some(limiter) = &state.rate_limiter else {
        return Ok(());
    };
    let caller = req
        .extensions()
        .get::<Caller>()
        .map(|c| c.id.clone())
        .unwrap_or_else(|| format!("addr:{}", peer_ip(req)));
    limiter
        .take(&caller, tasks, Instant::now())
        .map_err(|wait| ApiError::RateLimited {
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            per_sec: limiter.per_sec,
        })
}
