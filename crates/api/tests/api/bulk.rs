//! Bulk actions over HTTP: started with a 202 and its Location, worked to the end by the
//! api process, progress read back; refusals name the field (docs/flow-control.md).

use std::time::Duration;

use errand_testkit::wait_for;
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app};

async fn start(app: &TestApp, queue: &str, body: Value) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/queues/{queue}/bulk", app.base))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_bulk_cancel_is_worked_to_the_end_and_its_progress_read_back() {
    let app = spawn_app().await;
    let tasks: Vec<Value> = (0..1_200)
        .map(|i| json!({"kind": "sleep", "queue": "sweep", "payload": {"duration_secs": 1}, "id": format!("b{i}")}))
        .collect();
    for chunk in tasks.chunks(1000) {
        let r = app
            .http
            .post(format!("{}/v1/tasks/batch", app.base))
            .json(&json!({"tasks": chunk}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let res = start(&app, "sweep", json!({"action": "cancel"})).await;
    assert_eq!(res.status(), 202);
    let loc = res.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = res.json().await.unwrap();
    assert_eq!(
        (job["state"].clone(), job["total"].clone()),
        (json!("queued"), json!(1200))
    );
    let done = wait_for("the bulk cancel", Duration::from_secs(30), || async {
        let j: Value = app.get(&loc).await.json().await.ok()?;
        (j["status"] == "done").then_some(j)
    })
    .await;
    assert_eq!(
        (
            done["matched"].clone(),
            done["done"].clone(),
            done["skipped"].clone()
        ),
        (json!(1200), json!(1200), json!(0))
    );
    assert!(done["finished_at"].is_string());
    let t: Value = app.get("/v1/tasks/b7").await.json().await.unwrap();
    assert_eq!(t["state"], "cancelled");
    // And back: retry every cancelled one of the kind.
    let res = start(
        &app,
        "sweep",
        json!({"action": "retry", "state": "cancelled", "kind": "long_running"}),
    )
    .await;
    let loc = res.headers()["location"].to_str().unwrap().to_owned();
    let done = wait_for("the bulk retry", Duration::from_secs(30), || async {
        let j: Value = app.get(&loc).await.json().await.ok()?;
        (j["status"] == "done").then_some(j)
    })
    .await;
    assert_eq!(
        (done["kind"].clone(), done["done"].clone()),
        (json!("sleep"), json!(1200))
    );
}

#[tokio::test]
async fn a_bulk_action_that_does_not_fit_is_refused_naming_the_field() {
    let app = spawn_app().await;
    for (body, status, field) in [
        (json!({"action": "retry", "state": "queued"}), 422, "state"),
        (
            json!({"action": "delete", "state": "running"}),
            422,
            "state",
        ),
        (json!({"action": "cancel", "state": "nope"}), 422, "state"),
        (json!({"action": "cancel", "kind": "nope"}), 422, "kind"),
        (
            json!({"action": "cancel", "error_kind": ""}),
            422,
            "error_kind",
        ),
    ] {
        let p = problem(start(&app, "q", body.clone()).await, status).await;
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    assert_eq!(
        start(&app, "q", json!({"action": "shred"})).await.status(),
        400
    );
    let p = problem(app.get("/v1/queues/q/bulk/nope-1").await, 404).await;
    assert_eq!(p["type"], "https://errand.dev/problems/bulk-not-found");
}
