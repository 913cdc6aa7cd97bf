//! Production's refusal to run open, key scopes and rotation, and the submit rate limit.

use std::path::PathBuf;

use errand_api::startup::Application;
use errand_core::{
    Settings,
    settings::{ApiKey, Environment, Scope},
};
use serde_json::json;

use crate::helpers::{problem, spawn_app_with};

fn production() -> Settings {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"));
    let mut s = Settings::load_from(Environment::Production, &dir).expect("settings");
    s.api.host = "127.0.0.1".into();
    s.api.port = 0;
    s
}

fn error_of(settings: Settings) -> String {
    match Application::build(settings) {
        Ok(_) => panic!("the API started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn production_refuses_to_start_without_keys_and_says_how_to_set_one() {
    let e = error_of(production());
    assert!(e.contains("ERRAND__API__API_KEYS"), "{e}");
    assert!(e.contains("openssl rand"), "{e}");
    assert!(e.contains("allow_anonymous"), "{e}");

    let mut short = production();
    short.api.api_keys = vec![ApiKey::new(Scope::Read, "short")];
    let e = error_of(short);
    assert!(e.contains("at least 16"), "{e}");
    assert!(!e.contains("short"), "the key itself is not repeated: {e}");

    let mut open = production();
    open.api.allow_anonymous = true;
    assert!(
        Application::build(open).is_ok(),
        "allow_anonymous: true starts it"
    );
    let mut keyed = production();
    keyed.api.api_keys = vec![ApiKey::new(Scope::Admin, "0123456789abcdef0123")];
    assert!(Application::build(keyed).is_ok());
}

#[tokio::test]
async fn production_defaults_are_the_safe_ones() {
    let s = production();
    assert!(s.api.rate_limit.enabled());
    assert!(!s.tasks.http_destinations.is_open());
    assert!(
        s.tasks
            .http_destinations
            .check_ip("169.254.169.254".parse().unwrap())
            .is_err()
    );
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"));
    let local = Settings::load_from(Environment::Local, &dir).unwrap();
    assert!(!local.api.rate_limit.enabled(), "off locally");
    assert!(local.tasks.http_destinations.is_open());
    // The production defaults are compiled in: a config directory without production.yaml
    // still gets them.
    let bare = Settings::load_from(Environment::Production, &std::env::temp_dir()).unwrap();
    assert!(bare.api.rate_limit.enabled() && !bare.tasks.http_destinations.is_open());
    assert_eq!(bare.api.host, "0.0.0.0");
}

const READ: &str = "read-key-0123456789";
const SUBMIT: &str = "submit-key-0123456789";
const ADMIN_OLD: &str = "admin-key-old-0123456789";
const ADMIN_NEW: &str = "admin-key-new-0123456789";

#[tokio::test]
async fn keys_are_scoped_and_several_work_at_once() {
    let app = spawn_app_with(|s| {
        s.api.api_keys = vec![
            ApiKey::new(Scope::Read, READ),
            ApiKey::new(Scope::Submit, SUBMIT),
            ApiKey::new(Scope::Admin, ADMIN_OLD),
            ApiKey::new(Scope::Admin, ADMIN_NEW),
        ];
    })
    .await;
    let call = |method: Method, path: &str, key: Option<&str>| {
        let mut r = app
            .http
            .request(method, format!("{}{path}", app.base))
            .json(&json!({"kind": "noop", "payload": {}}));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    use reqwest::Method;
    // Reads: any key; none is 401.
    for k in [READ, SUBMIT, ADMIN_OLD, ADMIN_NEW] {
        assert_eq!(
            call(Method::GET, "/v1/queues", Some(k))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let res = call(Method::GET, "/v1/queues", None).await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    problem(res, 401).await;
    problem(
        call(Method::GET, "/v1/queues", Some("read-key-012345678"))
            .await
            .unwrap(),
        401,
    )
    .await;

    // Submit: not with the read key (403 naming both scopes).
    let body = problem(
        call(Method::POST, "/v1/tasks", Some(READ)).await.unwrap(),
        403,
    )
    .await;
    assert_eq!(body["type"], "https://errand.dev/problems/forbidden");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("`read`") && detail.contains("`submit`"),
        "{detail}"
    );
    for k in [SUBMIT, ADMIN_OLD, ADMIN_NEW] {
        assert_eq!(
            call(Method::POST, "/v1/tasks", Some(k))
                .await
                .unwrap()
                .status(),
            202
        );
    }
    // Schedules: admin only.
    let schedule = json!({"id": "s1", "cron": "*/10 * * * * *", "kind": "noop", "payload": {}});
    let post_schedule = |k: &'static str| {
        app.http
            .post(format!("{}/v1/schedules", app.base))
            .bearer_auth(k)
            .json(&schedule)
            .send()
    };
    problem(post_schedule(SUBMIT).await.unwrap(), 403).await;
    let created = post_schedule(ADMIN_NEW).await.unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    // Health and docs stay open.
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(app.get("/openapi.json").await.status(), 200);
}

#[tokio::test]
async fn submits_over_the_rate_limit_get_429_with_retry_after_per_key() {
    let app = spawn_app_with(|s| {
        s.api.api_keys = vec![
            ApiKey::new(Scope::Submit, SUBMIT),
            ApiKey::new(Scope::Admin, ADMIN_NEW),
        ];
        s.api.rate_limit.submits_per_sec = 0.5;
        s.api.rate_limit.burst = 3;
    })
    .await;
    let submit = |k: &'static str| {
        app.http
            .post(format!("{}/v1/tasks", app.base))
            .bearer_auth(k)
            .json(&json!({"kind": "noop", "payload": {}}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(submit(SUBMIT).await.unwrap().status(), 202);
    }
    let res = submit(SUBMIT).await.unwrap();
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    let body = problem(res, 429).await;
    assert_eq!(body["type"], "https://errand.dev/problems/rate-limited");
    // A batch counts each task; another key has its own budget.
    let batch = app
        .http
        .post(format!("{}/v1/tasks/batch", app.base))
        .bearer_auth(ADMIN_NEW)
        .json(&json!({"tasks": [{"kind": "noop", "payload": {}}, {"kind": "noop", "payload": {}}, {"kind": "noop", "payload": {}}, {"kind": "noop", "payload": {}}]}))
        .send()
        .await
        .unwrap();
    assert!(batch.status().is_success(), "{}", batch.status());
    problem(submit(ADMIN_NEW).await.unwrap(), 429).await;
    // Reads are never limited.
    let read = app
        .http
        .get(format!("{}/v1/queues", app.base))
        .bearer_auth(SUBMIT)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
}
