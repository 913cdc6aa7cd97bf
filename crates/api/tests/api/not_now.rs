//! Redis answering "not now": each reply a single redis-server can be made to give is
//! provoked for real, and the API must answer 503 + Retry-After with a problem type naming
//! the cause (never 500), report it on /readyz, and recover by itself once Redis does.

use std::time::Duration;

use errand_testkit::{RedisServer, free_port, wait_for};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const TASK: &str = r#"{"kind": "noop", "payload": {"n": 1}}"#;

async fn redis_cmd(redis: &RedisServer, args: &[&str]) -> redis::Value {
    let mut c = redis.conn().await;
    redis::cmd(args[0])
        .arg(&args[1..])
        .query_async(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Asserts `res` is the 503 of `cause`.
async fn unavailable(res: reqwest::Response, cause: &str) -> Value {
    let status = res.status();
    let retry_after = res.headers().get("retry-after").cloned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.unwrap(), "2", "Retry-After");
    assert_eq!(body["status"], 503);
    assert_eq!(
        body["type"],
        format!("https://errand.dev/problems/store-{cause}"),
        "{body}"
    );
    body
}

async fn submit(app: &TestApp) -> reqwest::Response {
    app.post_task(&serde_json::from_str(TASK).unwrap()).await
}

async fn recovers(app: &TestApp) {
    wait_for("submits to work again", Duration::from_secs(10), || async {
        (submit(app).await.status() == 202).then_some(())
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn out_of_memory_is_503_store_out_of_memory() {
    let app = spawn_app().await;
    let id = submit(&app).await.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A usual production setting: refuse writes rather than evict (tasks would vanish).
    redis_cmd(
        &app.redis,
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
    )
    .await;
    redis_cmd(&app.redis, &["DEBUG", "POPULATE", "60000", "fill", "64"]).await;
    redis_cmd(&app.redis, &["CONFIG", "SET", "maxmemory", "3mb"]).await;

    let body = unavailable(submit(&app).await, "out-of-memory").await;
    assert!(
        body["detail"].as_str().unwrap().contains("out of memory"),
        "{body}"
    );
    let batch = app
        .http
        .post(format!("{}/v1/tasks/batch", app.base))
        .json(&json!({"tasks": [{"kind": "noop", "payload": {}}]}))
        .send()
        .await
        .unwrap();
    unavailable(batch, "out-of-memory").await;
    unavailable(app.get("/readyz").await, "out-of-memory").await;
    // Reads still work: only writes are refused.
    assert_eq!(app.get(&format!("/v1/tasks/{id}")).await.status(), 200);

    redis_cmd(&app.redis, &["CONFIG", "SET", "maxmemory", "0"]).await;
    recovers(&app).await;
}

#[tokio::test]
async fn a_read_only_replica_is_503_store_read_only_and_master_down_when_stale_reads_are_off() {
    let app = spawn_app().await;
    let id = submit(&app).await.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // What a failover does to the old primary: it becomes a replica (of a primary that is
    // not there, so it never syncs and keeps its data).
    let nowhere = free_port().to_string();
    redis_cmd(&app.redis, &["REPLICAOF", "127.0.0.1", &nowhere]).await;
    unavailable(submit(&app).await, "read-only").await;
    unavailable(app.get("/readyz").await, "read-only").await;
    assert_eq!(app.get(&format!("/v1/tasks/{id}")).await.status(), 200);

    redis_cmd(
        &app.redis,
        &["CONFIG", "SET", "replica-serve-stale-data", "no"],
    )
    .await;
    unavailable(app.get(&format!("/v1/tasks/{id}")).await, "master-down").await;
    unavailable(app.get("/readyz").await, "master-down").await;

    redis_cmd(
        &app.redis,
        &["CONFIG", "SET", "replica-serve-stale-data", "yes"],
    )
    .await;
    redis_cmd(&app.redis, &["REPLICAOF", "NO", "ONE"]).await;
    recovers(&app).await;
}

#[tokio::test]
async fn a_long_script_is_503_store_busy() {
    let app = spawn_app().await;
    redis_cmd(
        &app.redis,
        &["CONFIG", "SET", "busy-reply-threshold", "100"],
    )
    .await;
    // A script that never ends, on a connection of its own (it never gets an answer until
    // the script is killed).
    let mut stuck = app.redis.conn().await;
    let script = tokio::spawn(async move {
        let r: redis::RedisResult<()> = redis::cmd("EVAL")
            .arg("while true do end")
            .arg(0)
            .query_async(&mut stuck)
            .await;
        r
    });
    let busy = wait_for("Redis to answer BUSY", Duration::from_secs(10), || async {
        let res = submit(&app).await;
        (res.status() == 503).then_some(res)
    })
    .await;
    unavailable(busy, "busy").await;
    unavailable(app.get("/readyz").await, "busy").await;

    redis_cmd(&app.redis, &["SCRIPT", "KILL"]).await;
    assert!(script.await.unwrap().is_err(), "the killed script fails");
    recovers(&app).await;
}

#[tokio::test]
async fn a_redis_loading_its_dataset_is_503_store_loading() {
    let mut app = spawn_app().await;
    submit(&app).await;
    redis_cmd(&app.redis, &["DEBUG", "POPULATE", "30000", "fill", "16"]).await;
    redis_cmd(&app.redis, &["SAVE"]).await;
    // Loading 30,000 keys with a 100 µs delay each (Redis's own test knobs) lasts seconds,
    // and answering clients every KiB read makes them see LOADING instead of a hang.
    app.redis
        .restart_loading(&[
            "--key-load-delay",
            "100",
            "--loading-process-events-interval-bytes",
            "1024",
        ])
        .await;
    let loading = wait_for("a LOADING answer", Duration::from_secs(10), || async {
        // The first answers may be about the connection the restart dropped.
        let res = app.get("/readyz").await;
        let loading =
            res.status() == 503 && res.headers()["content-type"] == "application/problem+json";
        let body = res.text().await.ok()?;
        (loading && body.contains("store-loading")).then_some(body)
    })
    .await;
    assert!(loading.contains("loading its dataset"), "{loading}");
    unavailable(submit(&app).await, "loading").await;
    wait_for("the load to finish", Duration::from_secs(30), || async {
        (app.get("/readyz").await.status() == 200).then_some(())
    })
    .await;
    recovers(&app).await;
}

#[tokio::test]
async fn wrong_credentials_are_503_store_auth_failed() {
    let redis = RedisServer::start_args(&["--requirepass", "right-password"]).await;
    let app = crate::helpers::spawn_app_on(redis, |s| {
        let port = s.redis.url.rsplit(':').next().unwrap().to_owned();
        s.redis.url = format!("redis://:wrong-password@127.0.0.1:{port}");
    });
    unavailable(app.get("/readyz").await, "auth-failed").await;
    unavailable(submit(&app).await, "auth-failed").await;
}
