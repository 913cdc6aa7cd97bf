//! The tutorial routes (the tutorial chapter's demos), in process: timings of sequential vs concurrent awaits,
//! the blocking vs offloaded probe, in-process background tasks, the Celery-style routes
//! without a worker, their OpenAPI entries, and ReDoc.

use errand_core::settings::{ApiKey, Scope};
use std::time::{Duration, Instant};

use errand_testkit::wait_for;
use serde_json::Value;

use crate::helpers::{TestApp, problem, spawn_app, spawn_app_with};

async fn get_json(app: &TestApp, path: &str) -> Value {
    let res = app.get(path).await;
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

async fn post(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
}

fn ms(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a ms count: {v}"))
}

/// Three 200 ms operations awaited in turn take ≥ 600 ms, one after another; under
/// `tokio::join!` they all start at once and the whole takes about one of them.
#[tokio::test]
async fn sequential_awaits_add_up_and_joined_ones_overlap() {
    let app = spawn_app().await;

    let t = Instant::now();
    let seq = get_json(&app, "/async/await-sequential?delay_ms=200").await;
    assert!(t.elapsed() >= Duration::from_millis(600));
    assert_eq!(seq["mode"], "sequential");
    assert_eq!(seq["delay_ms"], 200);
    assert!(ms(&seq["total_ms"]) >= 600, "{seq}");
    let steps = seq["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["fetch_user", "fetch_orders", "fetch_recommendations"]
    );
    for s in steps {
        assert!(ms(&s["finished_ms"]) - ms(&s["started_ms"]) >= 200, "{s}");
    }
    for w in steps.windows(2) {
        assert!(
            ms(&w[1]["started_ms"]) >= ms(&w[0]["finished_ms"]),
            "each starts after the previous ends: {seq}"
        );
    }

    let con = get_json(&app, "/async/gather-concurrent?delay_ms=200").await;
    assert_eq!(con["mode"], "concurrent");
    let total = ms(&con["total_ms"]);
    assert!((200..450).contains(&total), "{con}");
    for s in con["steps"].as_array().unwrap() {
        assert!(ms(&s["started_ms"]) < 50, "all start at once: {con}");
        assert!(ms(&s["finished_ms"]) >= 200, "{con}");
    }
}

#[tokio::test]
async fn demo_query_parameters_are_validated_by_name() {
    let app = spawn_app().await;
    for (path, field) in [
        ("/async/await-sequential?delay_ms=10001", "delay_ms"),
        ("/async/gather-concurrent?delay_ms=soon", "delay_ms"),
        ("/async/await-sequential?delay=5", "delay"),
        ("/async/basic?x=1", "x"),
        ("/async/blocking?ms=0", "ms"),
        ("/async/offloaded?ms=10001", "ms"),
        ("/async/blocking?work=gpu", "work"),
    ] {
        let body = problem(app.get(path).await, 400).await;
        assert_eq!(body["field"], field, "{path}: {body}");
    }
    let body = problem(app.get("/async/nope").await, 404).await;
    assert!(body["detail"].as_str().unwrap().contains("/async/nope"));
}

#[tokio::test]
async fn basic_endpoint_answers_after_its_await() {
    let app = spawn_app().await;
    let t = Instant::now();
    let body = get_json(&app, "/async/basic").await;
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert_eq!(body["message"], "Hello from an async endpoint");
    assert_eq!(body["awaited_ms"], 100);
}

/// Blocking the executor thread delays a task due 10 ms later by about the whole blocked
/// time; the same work on `spawn_blocking` leaves it on time.
#[tokio::test]
async fn blocking_work_stalls_the_runtime_and_offloaded_work_does_not() {
    let app = spawn_app().await;

    let b = get_json(&app, "/async/blocking?ms=500").await;
    assert_eq!(b["mode"], "blocking");
    assert_eq!(b["work"], "sleep");
    assert_eq!(b["work_ms"], 500);
    assert_eq!(b["probe_timer_ms"], 10);
    assert!(ms(&b["probe_delay_ms"]) >= 400, "probe held up: {b}");
    assert!(ms(&b["total_ms"]) >= 500, "{b}");

    let o = get_json(&app, "/async/offloaded?ms=500").await;
    assert_eq!(o["mode"], "offloaded");
    assert!(ms(&o["probe_delay_ms"]) < 100, "probe on time: {o}");
    assert!(ms(&o["total_ms"]) >= 500, "{o}");

    // CPU-bound work behaves the same way.
    let b = get_json(&app, "/async/blocking?ms=200&work=cpu").await;
    assert_eq!(b["work"], "cpu");
    assert!(ms(&b["cpu_rounds"]) > 0, "{b}");
    assert!(ms(&b["probe_delay_ms"]) >= 160, "{b}");
    let o = get_json(&app, "/async/offloaded?ms=200&work=cpu").await;
    assert!(ms(&o["cpu_rounds"]) > 0, "{o}");
    assert!(ms(&o["probe_delay_ms"]) < 100, "{o}");
}

/// The chapter's in-process task: 202 at once, then running, then completed with its
/// message; a second start of a running id is a 409.
#[tokio::test]
async fn background_task_runs_in_process_and_reports_its_status() {
    let app = spawn_app().await;
    let res = post(&app, "/tasks/background/simple?task_id=test123&duration=1").await;
    assert_eq!(res.status(), 202);
    assert_eq!(
        res.headers()["location"],
        "/tasks/background/status/test123"
    );
    let started: Value = res.json().await.unwrap();
    assert_eq!(started["task_id"], "test123");
    assert_eq!(started["status"], "pending");
    assert_eq!(started["duration_secs"], 1);
    assert!(started["message"].is_null());

    let running = wait_for("task to run", Duration::from_secs(5), || async {
        let s = get_json(&app, "/tasks/background/status/test123").await;
        (s["status"] == "running").then_some(s)
    })
    .await;
    assert!(running["started_at"].is_string());

    let body = problem(
        post(&app, "/tasks/background/simple?task_id=test123&duration=1").await,
        409,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("test123"));

    let done = wait_for("task to complete", Duration::from_secs(5), || async {
        let s = get_json(&app, "/tasks/background/status/test123").await;
        (s["status"] == "completed").then_some(s)
    })
    .await;
    assert_eq!(done["message"], "task test123 done");
    let started_at = chrono::DateTime::parse_from_rfc3339(done["started_at"].as_str().unwrap());
    let finished_at = chrono::DateTime::parse_from_rfc3339(done["finished_at"].as_str().unwrap());
    let took = finished_at.unwrap() - started_at.unwrap();
    assert!(took >= chrono::Duration::milliseconds(990), "slept: {took}");

    // A finished id may run again.
    let res = post(&app, "/tasks/background/simple?task_id=test123&duration=0").await;
    assert_eq!(res.status(), 202);
}

#[tokio::test]
async fn background_task_input_is_validated_and_unknown_ids_are_404() {
    let app = spawn_app().await;
    for (path, field) in [
        ("/tasks/background/simple?duration=5", "task_id"),
        (
            "/tasks/background/simple?task_id=a%20b&duration=5",
            "task_id",
        ),
        ("/tasks/background/simple?task_id=ok", "duration"),
        (
            "/tasks/background/simple?task_id=ok&duration=3601",
            "duration",
        ),
        (
            "/tasks/background/simple?task_id=ok&duration=-1",
            "duration",
        ),
        ("/tasks/background/simple?task_id=ok&duration=1&x=2", "x"),
    ] {
        let body = problem(post(&app, path).await, 400).await;
        assert_eq!(body["field"], field, "{path}: {body}");
    }
    problem(app.get("/tasks/background/status/never-started").await, 404).await;
    let body = problem(app.get("/tasks/background/status/a%20b").await, 400).await;
    assert_eq!(body["field"], "task_id");
}

/// The registry is bounded: the oldest finished entry makes room; when every entry is still
/// running, a new task is refused with 503 and a Retry-After.
#[tokio::test]
async fn full_background_registry_evicts_finished_then_refuses() {
    let app = spawn_app_with(|s| s.api.max_background_tasks = 2).await;
    let res = post(&app, "/tasks/background/simple?task_id=quick&duration=0").await;
    assert_eq!(res.status(), 202);
    wait_for("quick to complete", Duration::from_secs(5), || async {
        let s = get_json(&app, "/tasks/background/status/quick").await;
        (s["status"] == "completed").then_some(())
    })
    .await;
    for id in ["long1", "long2"] {
        let res = post(
            &app,
            &format!("/tasks/background/simple?task_id={id}&duration=60"),
        )
        .await;
        assert_eq!(res.status(), 202, "{id}");
    }
    problem(app.get("/tasks/background/status/quick").await, 404).await;

    let res = post(&app, "/tasks/background/simple?task_id=long3&duration=60").await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body = problem(res, 503).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("api.max_background_tasks"),
        "{body}"
    );
    problem(app.get("/tasks/background/status/long3").await, 404).await;
}

/// Without a worker the queued task stays PENDING; a second submit of the same id is a 200
/// with the same task, and the queue holds one task.
#[tokio::test]
async fn celery_task_is_queued_once_per_id_and_read_in_celery_words() {
    let app = spawn_app().await;
    let res = post(&app, "/tasks/celery/task?task_id=celery123&duration=60").await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["location"], "/tasks/celery/task/celery123");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"task_id": "celery123", "status": "PENDING", "result": null})
    );

    let res = post(&app, "/tasks/celery/task?task_id=celery123&duration=5").await;
    assert_eq!(res.status(), 200, "same id: the existing task");
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "PENDING");

    let record = get_json(&app, "/v1/tasks/celery123").await;
    assert_eq!(record["kind"], "sleep");
    assert_eq!(record["payload"]["duration_secs"], 60);
    assert_eq!(record["state"], "queued");
    let page = get_json(&app, "/v1/tasks").await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 1, "{page}");

    let got = get_json(&app, "/tasks/celery/task/celery123").await;
    assert_eq!(got["status"], "PENDING");
    assert!(got["result"].is_null());

    // Cancelled in errand is REVOKED in Celery's words.
    let res = post(&app, "/v1/tasks/celery123/cancel").await;
    assert_eq!(res.status(), 200);
    let got = get_json(&app, "/tasks/celery/task/celery123").await;
    assert_eq!(got["status"], "REVOKED");
}

#[tokio::test]
async fn celery_task_input_is_validated_and_unknown_ids_are_404() {
    let app = spawn_app_with(|s| s.tasks.max_sleep_secs = 120).await;
    for (path, field) in [
        ("/tasks/celery/task?duration=5", "task_id"),
        ("/tasks/celery/task?task_id=a/b&duration=5", "task_id"),
        ("/tasks/celery/task?task_id=ok", "duration"),
        ("/tasks/celery/task?task_id=ok&duration=121", "duration"),
        ("/tasks/celery/task?task_id=ok&duration=1.5", "duration"),
        ("/tasks/celery/task?task_id=ok&duration=1&queue=x", "queue"),
    ] {
        let body = problem(post(&app, path).await, 400).await;
        assert_eq!(body["field"], field, "{path}: {body}");
    }
    let body = problem(app.get("/tasks/celery/task/no-such-task").await, 404).await;
    assert!(body["type"].as_str().unwrap().ends_with("task-not-found"));
    let page = get_json(&app, "/v1/tasks").await;
    assert!(page["tasks"].as_array().unwrap().is_empty(), "{page}");
}

/// With API keys configured the tutorial routes need one too: the celery route enqueues real
/// work and the blocking demo ties up a thread.
#[tokio::test]
async fn tutorial_routes_need_the_api_key_when_keys_are_configured() {
    let app = spawn_app_with(|s| s.api.api_keys = vec![ApiKey::new(Scope::Admin, "s3cret")]).await;
    problem(app.get("/async/basic").await, 401).await;
    problem(
        post(&app, "/tasks/celery/task?task_id=k1&duration=1").await,
        401,
    )
    .await;
    problem(
        post(&app, "/tasks/background/simple?task_id=k1&duration=1").await,
        401,
    )
    .await;
    let res = app
        .http
        .get(format!("{}/async/basic", app.base))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/healthz").await.status(), 200, "health stays open");
}

#[tokio::test]
async fn tutorial_routes_are_documented_under_the_tutorial_tag() {
    let app = spawn_app().await;
    let doc = get_json(&app, "/openapi.json").await;
    for (path, method) in [
        ("/async/await-sequential", "get"),
        ("/async/gather-concurrent", "get"),
        ("/async/basic", "get"),
        ("/async/blocking", "get"),
        ("/async/offloaded", "get"),
        ("/tasks/background/simple", "post"),
        ("/tasks/background/status/{task_id}", "get"),
        ("/tasks/celery/task", "post"),
        ("/tasks/celery/task/{task_id}", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(
            op["tags"],
            serde_json::json!(["tutorial"]),
            "{method} {path}"
        );
        assert!(op["responses"]["200"].is_object() || op["responses"]["202"].is_object());
    }
    assert!(
        doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "tutorial")
    );
    for s in ["Timeline", "ProbeReport", "BackgroundStatus", "CeleryTask"] {
        assert!(doc["components"]["schemas"][s].is_object(), "schema {s}");
    }
}

/// ReDoc's page carries the whole OpenAPI document inline, so it needs no second request
/// to the API for it (its script comes from this server too: `redoc.rs`).
#[tokio::test]
async fn redoc_page_embeds_the_openapi_document() {
    let (_dir, bundle, _) = crate::redoc::stand_in_bundle();
    let app = spawn_app_with(move |s| s.api.redoc_js_path = bundle).await;
    let res = app.get("/redoc").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("Redoc.init("), "a ReDoc page");
    assert!(
        html.contains(r#""openapi":"3.1"#),
        "the spec is embedded in the page"
    );
    for path in ["/v1/tasks/{id}", "/tasks/celery/task/{task_id}"] {
        assert!(html.contains(&format!("\"{path}\"")), "embeds {path}");
    }
}
