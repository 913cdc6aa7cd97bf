//! The suite's harness: an api on port 0 over a private Redis, and the problem+json check
//! every refusal test uses.

use std::path::PathBuf;

use errand_api::startup::Application;
use errand_core::{Settings, settings::Environment};
use errand_testkit::RedisServer;
use serde_json::Value;

pub(crate) struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub redis: RedisServer,
    pub prefix: String,
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub(crate) async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on(RedisServer::start().await, tweak)
}

/// The app on a Redis the test started its own way (password, TLS).
pub(crate) fn spawn_app_on(redis: RedisServer, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"));
    let mut settings = Settings::load_from(Environment::Local, &dir).expect("settings");
    settings.api.port = 0;
    settings.api.host = "127.0.0.1".into();
    settings.redis.url = redis.url();
    settings.redis.response_timeout_ms = 500;
    settings.redis.connect_timeout_ms = 300;
    let prefix = format!("test{}", redis.port());
    settings.redis.key_prefix = prefix.clone();
    tweak(&mut settings);
    let app = Application::build(settings).expect("build app");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        http: reqwest::Client::new(),
        redis,
        prefix,
    }
}

impl TestApp {
    pub(crate) async fn post_task(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/tasks", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn post_raw(&self, body: &str, content_type: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/tasks", self.base))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }
}

/// Asserts a problem+json response with `status`, returning its body.
pub(crate) async fn problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(
        body["type"].as_str().unwrap().starts_with("https://"),
        "{body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}
