//! Which requests need a key, and of which scope: the policy the guard applies (and the
//! OpenAPI document describes), from a request's method and path alone.

use actix_web::http::Method;
use errand_core::settings::Scope;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
