//! Workflows over HTTP (docs/workflows.md): a submit checked whole, its steps run by an
//! HTTP worker that reads each step's inputs from its lease, the workflow read back, listed,
//! watched as events and cancelled.

use std::time::Duration;

use errand_testkit::wait_for;
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app_with};

async fn app() -> TestApp {
    spawn_app_with(|s| {
        s.api.upkeep_ms = 100;
    })
    .await
}

impl TestApp {
    async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn json_of(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    /// An HTTP worker of queue `wfq` that runs kind `step`: each result names the task and
    /// carries the inputs it was leased with.
    async fn step_worker(&self) -> String {
        let r: Value = self
            .post_json(
                "/v1/worker/register",
                &json!({"name": "wf", "queues": [{"name": "wfq", "concurrency": 8}],
                  "kinds": [{"name": "step", "payload_schema": {"type": "object"}}]}),
            )
            .await
            .json()
            .await
            .unwrap();
        r["worker"].as_str().unwrap().to_owned()
    }

    /// Leases what is ready and completes each as `outcome` says; returns the leased tasks.
    async fn work(&self, w: &str, outcome: impl Fn(&Value) -> Value) -> Vec<Value> {
        let leased: Value = self
            .post_json(
                "/v1/worker/lease",
                &json!({"worker": w, "max": 50, "wait_ms": 200}),
            )
            .await
            .json()
            .await
            .unwrap();
        let tasks = leased["tasks"].as_array().unwrap().clone();
        if tasks.is_empty() {
            return tasks;
        }
        let reports: Vec<Value> = tasks
            .iter()
            .map(|t| {
                let mut r = json!({"id": t["id"], "token": t["token"]});
                for (k, v) in outcome(t).as_object().unwrap() {
                    r[k] = v.clone();
                }
                r
            })
            .collect();
        let done: Value = self
            .post_json(
                "/v1/worker/complete",
                &json!({"worker": w, "reports": reports}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert!(
            done["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == 200),
            "{done}"
        );
        tasks
    }

    async fn until_ended(
        &self,
        w: &str,
        id: &str,
        outcome: impl Fn(&Value) -> Value,
    ) -> (Value, Vec<Value>) {
        let mut ran = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let wf = self.json_of(&format!("/v1/workflows/{id}")).await;
            if wf["state"] != "running" {
                return (wf, ran);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "workflow never ended: {wf}"
            );
            ran.extend(self.work(w, &outcome).await);
        }
    }
}

fn echo(t: &Value) -> Value {
    json!({"outcome": "succeeded", "result": {"task": t["id"], "inputs": t["inputs"]}})
}

#[tokio::test]
async fn a_chord_runs_on_http_workers_with_results_passed_along() {
    let app = app().await;
    let w = app.step_worker().await;
    let body = json!({"id": "nightly", "steps": [
        {"name": "a", "kind": "step", "queue": "wfq", "payload": {"n": 1}},
        {"name": "b", "kind": "step", "queue": "wfq"},
        {"name": "sum", "kind": "step", "queue": "wfq", "after": ["a", {"step": "b", "on_failure": "run"}], "on_failure": "fail"}
    ]});
    let res = app.post_json("/v1/workflows", &body).await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["location"], "/v1/workflows/nightly");
    let wf: Value = res.json().await.unwrap();
    assert_eq!(wf["state"], "running");
    assert_eq!(wf["steps"][0]["state"], "started");
    assert_eq!(wf["steps"][0]["task_id"], "nightly.a");
    assert_eq!(wf["steps"][2]["state"], "waiting");
    assert_eq!(
        wf["steps"][2]["after"],
        json!([{"step": "a", "on_failure": "fail"}, {"step": "b", "on_failure": "run"}])
    );
    // The same id again: the workflow as it is, nothing written.
    let again = app.post_json("/v1/workflows", &body).await;
    assert_eq!(again.status(), 200);

    let (wf, ran) = app.until_ended(&w, "nightly", echo).await;
    assert_eq!(wf["state"], "succeeded", "{wf}");
    assert!(wf["ended_at"].is_string());
    let sum = ran.iter().find(|t| t["id"] == "nightly.sum").unwrap();
    assert_eq!(sum["workflow"], "nightly");
    assert_eq!(sum["inputs"]["a"]["state"], "succeeded");
    assert_eq!(sum["inputs"]["b"]["result"]["task"], "nightly.b");
    let first = ran.iter().find(|t| t["id"] == "nightly.a").unwrap();
    assert_eq!(first["inputs"], json!({}));
    assert_eq!(
        wf["steps"][2]["result"]["inputs"]["a"]["id"], "nightly.a",
        "a step's result is served"
    );
    // A step's task says whose it is.
    let t = app.json_of("/v1/tasks/nightly.sum").await;
    assert_eq!(
        (t["workflow"].as_str(), t["step"].as_str()),
        (Some("nightly"), Some("sum"))
    );
    // Counted: the submit by the api, the end by the process whose call ended it (here
    // the api's advancer, applying the HTTP worker's reports).
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("errand_workflows_submitted_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"errand_workflows_ended_total{state="succeeded"}"#),
        "{metrics}"
    );
    let list = app.json_of("/v1/workflows?limit=10").await;
    assert_eq!(list["workflows"][0]["id"], "nightly");
    assert_eq!(list["workflows"][0]["ended_steps"], 3);
}

#[tokio::test]
async fn a_failed_step_fails_what_depends_on_it_until_it_is_retried() {
    let app = app().await;
    let w = app.step_worker().await;
    let body = json!({"id": "retry-me", "steps": [
        {"name": "a", "kind": "step", "queue": "wfq"},
        {"name": "b", "kind": "step", "queue": "wfq", "after": ["a"], "on_failure": "fail"}
    ]});
    assert_eq!(app.post_json("/v1/workflows", &body).await.status(), 202);
    let fail = |_: &Value| json!({"outcome": "failed", "error": {"kind": "bad", "message": "no"}, "retryable": false});
    let (wf, _) = app.until_ended(&w, "retry-me", fail).await;
    assert_eq!(wf["state"], "failed");
    assert_eq!(wf["steps"][1]["error"]["kind"], "dependency_failed");
    assert_eq!(wf["steps"][1]["skipped"], true);
    // Retry the failed step: the workflow runs again from it.
    let r = app
        .post_json("/v1/tasks/retry-me.a/retry", &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    wait_for(
        "the workflow to run again",
        Duration::from_secs(5),
        || async {
            let wf = app.json_of("/v1/workflows/retry-me").await;
            (wf["state"] == "running" && wf["steps"][1]["state"] == "waiting").then_some(())
        },
    )
    .await;
    let (wf, ran) = app.until_ended(&w, "retry-me", echo).await;
    assert_eq!(wf["state"], "succeeded");
    assert_eq!(ran.len(), 2);
}

#[tokio::test]
async fn a_cancelled_workflow_ends_and_its_events_say_so() {
    let app = app().await;
    let body = json!({"id": "halt", "steps": [
        {"name": "a", "kind": "step", "queue": "wfq"},
        {"name": "b", "kind": "step", "queue": "wfq", "after": ["a"], "on_failure": "fail"}
    ]});
    // No worker serves the kind yet: the registry knows it once one registered.
    let _w = app.step_worker().await;
    assert_eq!(app.post_json("/v1/workflows", &body).await.status(), 202);
    let events = app
        .http
        .get(format!("{}/v1/workflows/halt/events", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let r = app.post_json("/v1/workflows/halt/cancel", &json!({})).await;
    assert_eq!(r.status(), 202);
    let text = tokio::time::timeout(Duration::from_secs(10), events.text())
        .await
        .expect("the stream ends once the workflow has")
        .unwrap();
    let frames: Vec<Value> = text
        .split("\n\n")
        .filter_map(|f| f.strip_prefix("event: workflow\ndata: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(frames[0]["state"], "running");
    let last = frames.last().unwrap();
    assert_eq!(last["state"], "cancelled", "{text}");
    assert_eq!(last["steps"][1]["state"], "cancelled");
    let again = problem(
        app.post_json("/v1/workflows/halt/cancel", &json!({})).await,
        409,
    )
    .await;
    assert!(again["detail"].as_str().unwrap().contains("cancelled"));
    problem(app.get("/v1/workflows/nope").await, 404).await;
}

#[tokio::test]
async fn a_workflow_is_checked_whole_and_each_fault_named() {
    let app = app().await;
    let bad = |steps: Value| json!({"steps": steps});
    let cases = [
        (bad(json!([])), "steps"),
        (
            bad(json!([{"name": "a", "kind": "noop"}, {"name": "a", "kind": "noop"}])),
            "steps[1].name",
        ),
        (
            bad(json!([{"name": "a", "kind": "noop", "after": ["zz"], "on_failure": "fail"}])),
            "steps[0].after[0]",
        ),
        (
            bad(
                json!([{"name": "a", "kind": "noop"}, {"name": "b", "kind": "noop", "after": ["a"]}]),
            ),
            "steps[1].on_failure",
        ),
        (
            bad(json!([
                {"name": "a", "kind": "noop", "after": ["b"], "on_failure": "fail"},
                {"name": "b", "kind": "noop", "after": ["a"], "on_failure": "fail"}
            ])),
            "steps[0].after",
        ),
        (
            bad(json!([{"name": "a", "kind": "sleep", "payload": {"duration_secs": "x"}}])),
            "steps[0].payload.duration_secs",
        ),
        (
            bad(json!([{"name": "a", "kind": "no-such-kind"}])),
            "steps[0].kind",
        ),
        (
            bad(json!([{"name": "a", "kind": "noop", "queue": "bad queue"}])),
            "steps[0].queue",
        ),
        (
            json!({"id": "has.dot", "steps": [{"name": "a", "kind": "noop"}]}),
            "id",
        ),
    ];
    for (body, field) in cases {
        let p = problem(app.post_json("/v1/workflows", &body).await, 422).await;
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    // Nothing was written by any of them.
    let list = app.json_of("/v1/workflows").await;
    assert_eq!(list["workflows"], json!([]));
}
