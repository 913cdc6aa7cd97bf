//! Typed calls to errand's HTTP API for tests, shared by every e2e test file.

use std::time::Duration;

use serde_json::Value;

/// Submits a task and asserts it was accepted (202); returns the record.
pub async fn submit(http: &reqwest::Client, base: &str, body: Value) -> Value {
    let res = http
        .post(format!("{base}/v1/tasks"))
        .json(&body)
        .send()
        .await
        .expect("submit");
    assert_eq!(res.status(), 202, "submit {body}");
    res.json().await.expect("record")
}

/// The task's record.
pub async fn get(http: &reqwest::Client, base: &str, id: &str) -> Value {
    http.get(format!("{base}/v1/tasks/{id}"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("record")
}

/// Waits for task `id` to reach `state`; returns the record then.
pub async fn wait_state(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    state: &str,
    timeout: Duration,
) -> Value {
    crate::wait_for(&format!("task {id} to be {state}"), timeout, || async {
        let r: Value = http
            .get(format!("{base}/v1/tasks/{id}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (r["state"] == state).then_some(r)
    })
    .await
}
