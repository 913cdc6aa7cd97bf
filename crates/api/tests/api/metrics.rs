//! `/metrics`: the counters and histograms the api exports, scraped as text.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::spawn_app;

async fn scrape(app: &crate::helpers::TestApp) -> String {
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "the Prometheus text format"
    );
    res.text().await.unwrap()
}

/// `/metrics` counts requests by route template (never by task id, and an unknown path as
/// `unmatched`), reads the queue gauges from Redis, and still answers 200, quickly, with
/// `errand_redis_up 0` and the failed Redis call counted while Redis is down.
#[tokio::test]
async fn metrics_name_route_templates_and_answer_while_redis_is_down() {
    let mut app = spawn_app().await;
    let res = app
        .post_task(&json!({"kind": "sleep", "payload": {"duration_secs": 1}, "queue": "metrics-q"}))
        .await;
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.get(&format!("/v1/tasks/{id}")).await.status(), 200);
    assert_eq!(app.get("/no/such/route/4242").await.status(), 404);

    let text = scrape(&app).await;
    assert!(text.contains("errand_redis_up 1"), "{text}");
    assert!(
        text.contains(r#"errand_queue_tasks{queue="metrics-q",state="queued"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"errand_kinds_submitted_total{queue="metrics-q",kind="sleep"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v1/tasks/{id}",status="200""#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(!text.contains(&id), "a task id is never a label");
    assert!(!text.contains("4242"), "nor a raw path");

    app.redis.kill().await;
    let t = Instant::now();
    let text = scrape(&app).await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(text.contains("errand_redis_up 0"), "{text}");
    assert!(
        text.contains(r#"errand_redis_call_errors_total{op="queues"}"#),
        "{text}"
    );
}
