//! Redis unavailable or refusing writes: 503 with Retry-After, and recovery by itself.

use std::time::{Duration, Instant};

use errand_testkit::wait_for;
use serde_json::json;

use crate::helpers::{problem, spawn_app};

/// Redis down: 503 + Retry-After, fast (never a hang or a 500); back by itself after.
#[tokio::test]
async fn redis_down_is_503_with_retry_after_and_recovers_by_itself() {
    let mut app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.redis.kill().await;

    let body = json!({"kind": "sleep", "payload": {"duration_secs": 1}});
    for _ in 0..3 {
        let t = Instant::now();
        let res = app.post_task(&body).await;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "answered within the request budget: {:?}",
            t.elapsed()
        );
        assert_eq!(res.headers()["retry-after"], "2");
        problem(res, 503).await;
    }
    let res = app.get("/v1/tasks/anything").await;
    assert!(res.headers().contains_key("retry-after"));
    problem(res, 503).await;
    problem(app.get("/readyz").await, 503).await;
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "liveness does not depend on Redis"
    );

    app.redis.restart().await;
    wait_for("submit to work again", Duration::from_secs(15), || async {
        (app.post_task(&body).await.status() == 202).then_some(())
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);
}
