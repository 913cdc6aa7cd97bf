//! The HTTP worker protocol (`/v1/worker/*`) against a real Redis: register, lease,
//! heartbeat, complete, and the fences: a report whose lease lapsed and was taken over is
//! refused, a replay is answered as the first was.

use std::time::Duration;

use errand_core::settings::{ApiKey, Scope};
use errand_testkit::wait_for;
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app_with};

async fn app() -> TestApp {
    spawn_app_with(|s| {
        s.worker.lease_secs = 1;
        s.api.upkeep_ms = 100;
    })
    .await
}

impl TestApp {
    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn ok(&self, path: &str, body: &Value) -> Value {
        let res = self.post(path, body).await;
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn record(&self, id: &str) -> Value {
        self.get(&format!("/v1/tasks/{id}"))
            .await
            .json()
            .await
            .unwrap()
    }

    async fn register(&self, queue: &str) -> String {
        let r = self
            .ok(
                "/v1/worker/register",
                &json!({"name": "py", "queues": [{"name": queue, "concurrency": 4}],
                  "kinds": [{"name": "resize", "idempotent": true,
                    "payload_schema": {"type": "object", "required": ["width"],
                      "properties": {"width": {"type": "integer", "minimum": 1}}},
                    "result_schema": {"type": "object", "required": ["ok"]}}]}),
            )
            .await;
        assert_eq!(r["lease_secs"], 1.0);
        r["worker"].as_str().unwrap().to_owned()
    }

    async fn submit(&self, queue: &str, width: u64) -> String {
        let res = self
            .post_task(&json!({"kind": "resize", "queue": queue, "payload": {"width": width}}))
            .await;
        assert_eq!(res.status(), 202);
        res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn lease(&self, worker: &str, max: usize, wait_ms: u64) -> Vec<Value> {
        self.ok(
            "/v1/worker/lease",
            &json!({"worker": worker, "max": max, "wait_ms": wait_ms}),
        )
        .await["tasks"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn report(task: &Value, outcome: Value) -> Value {
    let mut r = json!({"id": task["id"], "token": task["token"]});
    for (k, v) in outcome.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

#[tokio::test]
async fn a_worker_registers_leases_heartbeats_and_completes() {
    let app = app().await;
    let w = app.register("py").await;
    let kinds: Value = app.get("/v1/kinds").await.json().await.unwrap();
    let k = kinds
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "resize")
        .unwrap();
    assert_eq!(k["workers"], json!([w]));
    assert_eq!(k["queues"], json!(["py"]));
    let body = problem(
        app.post_task(&json!({"kind": "resize", "queue": "py", "payload": {"width": 0}}))
            .await,
        422,
    )
    .await;
    assert_eq!(body["field"], "payload.width");

    // A long-poll answers as soon as a task arrives.
    let (leased, id) = tokio::join!(app.lease(&w, 10, 10_000), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.submit("py", 5).await
    });
    assert_eq!(leased.len(), 1);
    let t = &leased[0];
    assert_eq!(
        (t["id"].as_str(), t["attempt"].as_u64()),
        (Some(id.as_str()), Some(1))
    );
    assert_eq!(t["payload"], json!({"width": 5}));
    assert_eq!(app.record(&id).await["state"], "running");

    let hb = app
        .ok(
            "/v1/worker/heartbeat",
            &json!({"worker": w, "tasks": [{"id": id, "token": t["token"],
                "progress": {"percent": 40, "message": "resizing"}}]}),
        )
        .await;
    assert_eq!(
        (hb["cancel"].clone(), hb["lost"].clone()),
        (json!([]), json!([]))
    );
    assert_eq!(app.record(&id).await["progress"]["percent"], 40);

    // A result off the kind's result schema is refused and nothing is recorded.
    let r = app
        .ok(
            "/v1/worker/complete",
            &json!({"worker": w, "reports": [report(t, json!({"outcome": "succeeded", "result": {"no": 1}}))]}),
        )
        .await;
    assert_eq!(r["results"][0]["status"], 422);
    assert_eq!(r["results"][0]["field"], "reports[0].result.ok");
    assert_eq!(app.record(&id).await["state"], "running");
    let good = json!({"worker": w, "reports": [report(t, json!({"outcome": "succeeded", "result": {"ok": true}}))]});
    for _ in 0..2 {
        // The second is a replay (a lost answer): answered as the first was.
        let r = app.ok("/v1/worker/complete", &good).await;
        assert_eq!(r["results"][0]["status"], 200, "{r}");
    }
    let rec = app.record(&id).await;
    assert_eq!(rec["state"], "succeeded");
    assert_eq!(rec["result"], json!({"ok": true}));
    assert_eq!(rec["worker"], w.as_str());
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("errand_http_worker_reports_total{outcome=\"succeeded\",status=\"200\"}")
            && metrics.contains("errand_http_worker_leased_total"),
        "{metrics}"
    );
    let workers: Value = app.get("/v1/workers").await.json().await.unwrap();
    assert!(
        workers["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == w.as_str()),
        "{workers}"
    );
}

#[tokio::test]
async fn a_report_after_the_lease_lapsed_and_was_taken_over_is_refused() {
    let app = app().await;
    let w1 = app.register("py").await;
    let w2 = app.register("py").await;
    let id = app.submit("py", 7).await;
    let first = app.lease(&w1, 1, 1000).await.remove(0);
    // w1 goes silent past its 1 s lease; upkeep gives the task back; w2 takes it.
    let second = wait_for("the task leased again", Duration::from_secs(10), || async {
        app.lease(&w2, 1, 200).await.pop()
    })
    .await;
    assert_eq!(second["id"], id.as_str());
    assert_eq!(second["attempt"], 2);
    assert_ne!(second["token"], first["token"]);
    // w1 comes back: its heartbeat says the task is lost, its report is refused.
    let hb = app
        .ok(
            "/v1/worker/heartbeat",
            &json!({"worker": w1, "tasks": [{"id": id, "token": first["token"]}]}),
        )
        .await;
    assert_eq!(hb["lost"], json!([id]));
    let late = json!({"outcome": "succeeded", "result": {"ok": "late"}});
    let r = app
        .ok(
            "/v1/worker/complete",
            &json!({"worker": w1, "reports": [report(&first, late.clone())]}),
        )
        .await;
    assert_eq!(r["results"][0]["status"], 409, "{r}");
    assert!(
        r["results"][0]["type"]
            .as_str()
            .unwrap()
            .ends_with("stale-claim")
    );
    let one = app
        .post(
            &format!("/v1/worker/tasks/{id}/complete"),
            &report(&first, late),
        )
        .await;
    let body = problem(one, 409).await;
    assert!(body["type"].as_str().unwrap().ends_with("stale-claim"));
    // The attempt that holds it records.
    let r = app
        .ok(
            &format!("/v1/worker/tasks/{id}/complete"),
            &report(
                &second,
                json!({"outcome": "succeeded", "result": {"ok": "w2"}}),
            ),
        )
        .await;
    assert_eq!(r["recorded"], true);
    let rec = app.record(&id).await;
    assert_eq!(
        (rec["state"].as_str(), rec["result"]["ok"].as_str()),
        (Some("succeeded"), Some("w2"))
    );
    assert_eq!(rec["attempt"], 2);
}

#[tokio::test]
async fn cancels_failures_and_retries_reach_the_record() {
    let app = app().await;
    let w = app.register("py").await;
    let id = app.submit("py", 1).await;
    let t = app.lease(&w, 1, 1000).await.remove(0);
    let res = app
        .post(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert!(res.status().is_success(), "{}", res.status());
    let hb = app
        .ok(
            "/v1/worker/heartbeat",
            &json!({"worker": w, "tasks": [{"id": id, "token": t["token"]}]}),
        )
        .await;
    assert_eq!(hb["cancel"], json!([id]));
    app.ok(
        "/v1/worker/complete",
        &json!({"worker": w, "reports": [report(&t, json!({"outcome": "cancelled", "message": "stopped"}))]}),
    )
    .await;
    assert_eq!(app.record(&id).await["state"], "cancelled");

    // Retryable with a delay: retrying, then run again as attempt 2; permanent: failed.
    let id = app.submit("py", 2).await;
    let t = app.lease(&w, 1, 1000).await.remove(0);
    app.ok(
        "/v1/worker/complete",
        &json!({"worker": w, "reports": [report(&t, json!({"outcome": "failed",
            "error": {"kind": "ValueError", "message": "flaky"}, "retryable": true, "retry_in_secs": 0.2}))]}),
    )
    .await;
    let rec = app.record(&id).await;
    assert_eq!(rec["state"], "retrying", "{rec}");
    assert_eq!(rec["error"]["kind"], "ValueError");
    let t = wait_for("the retry leased", Duration::from_secs(10), || async {
        app.lease(&w, 1, 200).await.pop()
    })
    .await;
    assert_eq!(t["attempt"], 2);
    app.ok(
        "/v1/worker/complete",
        &json!({"worker": w, "reports": [report(&t, json!({"outcome": "failed",
            "error": {"kind": "Permanent", "message": "bad input"}, "retryable": false}))]}),
    )
    .await;
    assert_eq!(app.record(&id).await["state"], "failed");

    // A kind the worker did not register, on its queue: that attempt fails retryably.
    let res = app
        .post_task(&json!({"kind": "noop", "queue": "py", "max_attempts": 1}))
        .await;
    let noop: Value = res.json().await.unwrap();
    assert!(app.lease(&w, 5, 500).await.is_empty());
    let rec = app.record(noop["id"].as_str().unwrap()).await;
    assert_eq!(
        (rec["state"].as_str(), rec["error"]["kind"].as_str()),
        (Some("failed"), Some("unknown_kind"))
    );

    // An id that is not registered: 404 worker-unknown (register again).
    let body = problem(
        app.post("/v1/worker/lease", &json!({"worker": "http:nobody:0"}))
            .await,
        404,
    )
    .await;
    assert!(body["type"].as_str().unwrap().ends_with("worker-unknown"));
    let body = problem(
        app.post(
            "/v1/worker/register",
            &json!({"queues": [{"name": "py", "concurrency": 1}],
                "kinds": [{"name": "x", "payload_schema": {"type": "no-such-type"}}]}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["field"], "kinds[0].payload_schema");
}

#[tokio::test]
async fn a_worker_key_does_the_protocol_and_nothing_else() {
    let app = spawn_app_with(|s| {
        s.api.api_keys = vec![
            ApiKey::new(Scope::Worker, "worker-key-00000000"),
            ApiKey::new(Scope::Submit, "submit-key-00000000"),
        ];
    })
    .await;
    let call = |path: &'static str, key: &'static str, body: Value| {
        let app = &app;
        async move {
            app.http
                .post(format!("{}{path}", app.base))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let reg = json!({"queues": [{"name": "py", "concurrency": 1}],
        "kinds": [{"name": "k", "payload_schema": {}}]});
    assert_eq!(
        call("/v1/worker/register", "worker-key-00000000", reg.clone())
            .await
            .status(),
        200
    );
    problem(
        call("/v1/worker/register", "submit-key-00000000", reg).await,
        403,
    )
    .await;
    problem(
        call("/v1/tasks", "worker-key-00000000", json!({"kind": "noop"})).await,
        403,
    )
    .await;
    let read = app
        .http
        .get(format!("{}/v1/tasks", app.base))
        .bearer_auth("worker-key-00000000")
        .send()
        .await
        .unwrap();
    problem(read, 403).await;
}

/// A long-poll outlives its client (actix-web runs the handler on): one of a worker that
/// stopped heartbeating ends early, claiming nothing, while a live worker's waits on.
#[tokio::test]
async fn a_long_poll_of_a_worker_that_stopped_heartbeating_ends_without_claiming() {
    let app = app().await;
    let w = app.register("gone").await;
    let t = std::time::Instant::now();
    let leased = app.lease(&w, 4, 10_000).await;
    assert!(leased.is_empty());
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "ended before its 10 s: {:?}",
        t.elapsed()
    );
    let id = app.submit("gone", 7).await;
    assert_eq!(app.record(&id).await["state"], "queued");

    // A worker that heartbeats through its long-poll gets the task that arrives late.
    let live = app.register("alive").await;
    let beat = async {
        for _ in 0..15 {
            app.ok(
                "/v1/worker/heartbeat",
                &json!({"worker": live, "tasks": []}),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (leased, id, ()) = tokio::join!(
        app.lease(&live, 4, 5_000),
        async {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            app.submit("alive", 8).await
        },
        beat
    );
    assert_eq!(leased.len(), 1, "{leased:?}");
    assert_eq!(leased[0]["id"], id.as_str());
}
