//! Who may do what: API keys with scopes, checked in constant time, and the per-caller
//! submit rate limit.
//!
//! Keys are kept only as SHA-256 digests, and a presented key is hashed and compared with
//! every configured digest (no early exit), so neither the comparison's time nor which key
//! matched first says anything about a key's characters or length. Neither a key nor its
//! digest is ever logged: requests are identified by a short key id (the digest's first
//! 8 hex digits), which is what the rate limiter counts by.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use actix_web::{
    HttpMessage, HttpRequest,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{Method, header},
    middleware::Next,
    web,
};
use errand_core::settings::{ApiKey, RateLimitSettings, Scope};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{error::ApiError, state::AppState};

/// The configured keys, as digests.
pub(crate) struct Keys {
    keys: Vec<([u8; 32], Scope)>,
}

/// Who is calling, as the guard established it; in the request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// `key:<8 hex>` for a key, `addr:<ip>` with no keys configured.
    pub id: String,
    pub scope: Scope,
}

impl Keys {
    pub(crate) fn new(keys: &[ApiKey]) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|k| (Sha256::digest(k.secret().as_bytes()).into(), k.scope))
                .collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller `presented` identifies, if any key matches. Every key is compared.
    fn identify(&self, presented: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<Scope> = None;
        for (k, scope) in &self.keys {
            if bool::from(k.ct_eq(&digest)) {
                found = found.max(Some(*scope));
            }
        }
        found.map(|scope| Caller {
            id: format!(
                "key:{}",
                digest[..4]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
            scope,
        })
    }
}

/// The scope a request needs: reads need `read`; changing tasks (submit, cancel, retry,
/// workflows, the tutorial routes) needs `submit`; everything else that changes state
/// (schedules, queue controls, removing a kind) needs `admin`; the HTTP worker protocol
/// (`/v1/worker/*`) needs `worker` (or `admin`).
pub(crate) fn required_scope(method: &Method, path: &str) -> Scope {
    if path.starts_with("/v1/worker/") {
        Scope::Worker
    } else if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        Scope::Read
    } else if path == "/v1/tasks"
        || path.starts_with("/v1/tasks/")
        || path == "/v1/workflows"
        || path.starts_with("/v1/workflows/")
        || !path.starts_with("/v1/")
    {
        Scope::Submit
    } else {
        Scope::Admin
    }
}

/// Routes behind the keys: `/v1/*` and the tutorial routes' `/async` and `/tasks`; docs and
/// health stay open (orchestrators probe `/readyz` without a key).
pub(crate) fn needs_key(path: &str) -> bool {
    path.starts_with("/v1/")
        || ["/async", "/tasks"].iter().any(|scope| {
            path.strip_prefix(scope)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

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

/// Token buckets per caller, in this process. A request is let through while its bucket
/// holds at least one token and then pays for every task it submits, so a batch larger
/// than the burst still goes through once, after which the caller waits its debt off.
pub(crate) struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Callers idle this long are forgotten, so the map cannot grow without bound.
const FORGET_AFTER: Duration = Duration::from_secs(600);

impl RateLimiter {
    pub(crate) fn new(s: &RateLimitSettings) -> Option<Self> {
        s.enabled().then(|| Self {
            per_sec: s.submits_per_sec,
            burst: f64::from(s.burst),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes `tasks` tokens from `caller`'s bucket, or says how long until it may try.
    pub(crate) fn take(&self, caller: &str, tasks: usize, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at) < FORGET_AFTER);
        }
        let (tokens, at) = buckets
            .entry(caller.to_owned())
            .or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_sec));
        }
        *tokens -= tasks as f64;
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_matching_key_is_found_and_the_widest_scope_wins() {
        let keys = Keys::new(&[
            ApiKey::new(Scope::Read, "reader-key-000000"),
            ApiKey::new(Scope::Submit, "submit-key-000000"),
            ApiKey::new(Scope::Admin, "submit-key-000000"),
        ]);
        assert_eq!(
            keys.identify("reader-key-000000").unwrap().scope,
            Scope::Read
        );
        assert_eq!(
            keys.identify("submit-key-000000").unwrap().scope,
            Scope::Admin
        );
        assert!(keys.identify("reader-key-00000").is_none());
        assert!(keys.identify("").is_none());
        let id = keys.identify("reader-key-000000").unwrap().id;
        assert!(
            id.starts_with("key:") && id.len() == 12 && !id.contains("reader"),
            "{id}"
        );
    }

    #[test]
    fn scopes_follow_the_method_and_resource() {
        let s = |m: Method, p| required_scope(&m, p);
        assert_eq!(s(Method::GET, "/v1/schedules"), Scope::Read);
        assert_eq!(s(Method::POST, "/v1/tasks"), Scope::Submit);
        assert_eq!(s(Method::POST, "/v1/tasks/batch"), Scope::Submit);
        assert_eq!(s(Method::POST, "/v1/tasks/x/cancel"), Scope::Submit);
        assert_eq!(s(Method::POST, "/v1/workflows"), Scope::Submit);
        assert_eq!(s(Method::POST, "/v1/workflows/w/cancel"), Scope::Submit);
        assert_eq!(s(Method::POST, "/async/io"), Scope::Submit);
        assert_eq!(s(Method::POST, "/v1/schedules"), Scope::Admin);
        assert_eq!(s(Method::DELETE, "/v1/schedules/x"), Scope::Admin);
        assert_eq!(s(Method::POST, "/v1/queues/default/pause"), Scope::Admin);
        assert_eq!(s(Method::DELETE, "/v1/kinds/acme.report"), Scope::Admin);
        assert_eq!(s(Method::GET, "/v1/kinds"), Scope::Read);
        assert_eq!(s(Method::POST, "/v1/worker/lease"), Scope::Worker);
    }

    #[test]
    fn the_bucket_refills_at_the_rate_and_a_big_batch_goes_into_debt() {
        let l = RateLimiter::new(&RateLimitSettings {
            submits_per_sec: 10.0,
            burst: 5,
        })
        .unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(l.take("a", 1, t0).is_ok());
        }
        let wait = l.take("a", 1, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert!(l.take("b", 1, t0).is_ok(), "callers are counted apart");
        assert!(l.take("a", 1, t0 + Duration::from_millis(100)).is_ok());
        // A batch of 20 passes once, then the debt (15 tokens) takes 1.6 s to pay off.
        assert!(l.take("c", 20, t0).is_ok());
        let wait = l.take("c", 1, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.6).abs() < 1e-6, "{wait:?}");
        assert!(
            RateLimiter::new(&RateLimitSettings {
                submits_per_sec: 0.0,
                burst: 5
            })
            .is_none()
        );
    }
}
