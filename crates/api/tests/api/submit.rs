//! Submitting a task: defaults, idempotency, and a 4xx naming the field for each bad input.

use errand_core::settings::{ApiKey, Scope};
use serde_json::{Value, json};

use crate::helpers::{problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn submit_returns_202_with_record_and_location_then_get_reads_it() {
    let app = spawn_app().await;
    let res = app
        .post_task(&json!({"kind": "long_running", "payload": {"duration_secs": 1}}))
        .await;
    assert_eq!(res.status(), 202);
    let loc = res.headers()["location"].to_str().unwrap().to_owned();
    let rec: Value = res.json().await.unwrap();
    assert_eq!(
        rec["kind"], "sleep",
        "aliases are stored as the canonical kind"
    );
    assert_eq!(rec["state"], "queued");
    assert_eq!(rec["queue"], "default");
    assert_eq!(rec["attempt"], 0);
    assert_eq!(rec["max_attempts"], 3);
    let got: Value = app.get(&loc).await.json().await.unwrap();
    assert_eq!(got, rec);
}

#[tokio::test]
async fn same_id_twice_returns_200_with_the_existing_record_and_enqueues_once() {
    let app = spawn_app().await;
    let body = json!({"kind": "sleep", "payload": {"duration_secs": 1}, "id": "order-42"});
    let first = app.post_task(&body).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = app
        .post_task(&json!({"kind": "sleep", "payload": {"duration_secs": 9}, "id": "order-42"}))
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "the original record, untouched"
    );
    // The header form is the same key.
    let via_header = app
        .http
        .post(format!("{}/v1/tasks", app.base))
        .header("Idempotency-Key", "order-42")
        .json(&json!({"kind": "sleep", "payload": {"duration_secs": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(via_header.status(), 200);
    let mut conn = app.redis.conn().await;
    let active: i64 = redis::cmd("LLEN")
        .arg(format!("{}:{{default}}:ready", app.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(active, 1, "one job enqueued");
}

#[tokio::test]
async fn bad_input_gets_a_4xx_problem_naming_the_field() {
    let app = spawn_app().await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"kind": "nope"}), 422, "kind"),
        (
            json!({"kind": "sleep", "payload": {"duration_secs": "five"}}),
            422,
            "payload.duration_secs",
        ),
        (
            json!({"kind": "sleep", "payload": {"duration_secs": -1}}),
            422,
            "payload.duration_secs",
        ),
        (
            json!({"kind": "sleep", "payload": {"duration_secs": 1, "extra": 1}}),
            422,
            "payload.extra",
        ),
        (json!({"kind": "sleep", "payload": {}}), 422, "payload"),
        (json!({"kind": 5}), 400, "kind"),
        (json!({"payload": {}}), 400, "."),
        (
            json!({"kind": "sleep", "payload": {"duration_secs": 1}, "bogus": true}),
            400,
            ".",
        ),
        (
            json!({"kind": "sleep", "payload": {"duration_secs": 1}, "queue": "a b"}),
            422,
            "queue",
        ),
        (
            json!({"kind": "sleep", "payload": {"duration_secs": 1}, "id": "a/b"}),
            422,
            "id",
        ),
        (
            json!({"kind": "sleep", "payload": {"duration_secs": 1}, "max_attempts": 0}),
            422,
            "max_attempts",
        ),
        (
            json!({"kind": "sleep", "payload": {"duration_secs": 1}, "max_attempts": -1}),
            400,
            "max_attempts",
        ),
        (
            json!({"kind": "sleep", "payload": {"duration_secs": 1}, "delay_secs": 1, "run_at": "2030-01-01T00:00:00Z"}),
            422,
            "delay_secs",
        ),
        (
            json!({"kind": "sleep", "payload": {"duration_secs": 1}, "run_at": "tomorrow"}),
            400,
            "run_at",
        ),
    ];
    for (body, status, field) in cases {
        let p = problem(app.post_task(&body).await, status).await;
        if field != "." {
            assert_eq!(p["field"], field, "{body} -> {p}");
        }
    }
}

#[tokio::test]
async fn malformed_bodies_and_content_types_are_4xx_problems() {
    let app = spawn_app().await;
    let p = problem(app.post_raw("{\"kind\": ", "application/json").await, 400).await;
    assert!(p["detail"].as_str().unwrap().contains("JSON"), "{p}");
    problem(app.post_raw("not json", "application/json").await, 400).await;
    problem(app.post_raw("{}", "text/plain").await, 415).await;
    problem(app.post_raw("[1,2]", "application/json").await, 400).await;
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    problem(app.post_raw(&deep, "application/json").await, 400).await;
    // Healthy afterwards.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn oversized_body_and_payload_are_413() {
    let app = spawn_app_with(|s| {
        s.api.max_body_bytes = 4096;
        s.api.max_payload_bytes = 1024;
    })
    .await;
    let big = "x".repeat(8000);
    problem(
        app.post_raw(
            &format!("{{\"kind\":\"noop\",\"payload\":\"{big}\"}}"),
            "application/json",
        )
        .await,
        413,
    )
    .await;
    let mid = "x".repeat(2000);
    problem(
        app.post_task(&json!({"kind": "noop", "payload": {"s": mid}}))
            .await,
        413,
    )
    .await;
}

#[tokio::test]
async fn unknown_and_malformed_ids_and_routes() {
    let app = spawn_app().await;
    let p = problem(app.get("/v1/tasks/does-not-exist").await, 404).await;
    assert!(p["detail"].as_str().unwrap().contains("does-not-exist"));
    let p = problem(app.get("/v1/tasks/%7Bbad%7D").await, 400).await;
    assert_eq!(p["field"], "id");
    problem(app.get("/v1/nothing-here").await, 404).await;
}

#[tokio::test]
async fn kinds_lists_the_catalog_with_schemas() {
    let app = spawn_app().await;
    let kinds: Value = app.get("/v1/kinds").await.json().await.unwrap();
    let sleep = kinds
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "sleep")
        .expect("sleep kind");
    assert_eq!(sleep["aliases"], json!(["long_running"]));
    assert_eq!(sleep["idempotent"], true);
    assert!(
        sleep["payload_schema"]["properties"]["duration_secs"].is_object(),
        "{sleep}"
    );
}

#[tokio::test]
async fn api_keys_when_configured_guard_v1_but_not_health() {
    let app = spawn_app_with(|s| s.api.api_keys = vec![ApiKey::new(Scope::Admin, "s3cret")]).await;
    problem(app.get("/v1/kinds").await, 401).await;
    let ok = app
        .http
        .get(format!("{}/v1/kinds", app.base))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let wrong = app
        .http
        .get(format!("{}/v1/kinds", app.base))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    problem(wrong, 401).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_unique_key_answers_the_first_task_inside_its_window_per_queue() {
    let app = spawn_app().await;
    let body = |q: &str| {
        json!({"kind": "sleep", "queue": q, "payload": {"duration_secs": 1},
               "unique_key": "refresh:customer-7", "unique_for_secs": 300})
    };
    let first = app.post_task(&body("reports")).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = app.post_task(&body("reports")).await;
    assert_eq!(again.status(), 200, "a duplicate is answered, not created");
    assert_eq!(
        again.headers()["location"],
        format!("/v1/tasks/{}", first["id"].as_str().unwrap()).as_str()
    );
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    let elsewhere = app.post_task(&body("other")).await;
    assert_eq!(elsewhere.status(), 202, "unique per queue");
    // In a batch too: the key is held already.
    let res = app
        .http
        .post(format!("{}/v1/tasks/batch", app.base))
        .json(&json!({"tasks": [body("reports"), body("fresh"), body("fresh")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["created"], 1, "{b}");
    assert_eq!(b["tasks"][0]["id"], first["id"]);
    assert_eq!(b["tasks"][2]["id"], b["tasks"][1]["id"]);
}

#[tokio::test]
async fn unique_fields_are_refused_naming_the_field() {
    let app = spawn_app().await;
    for (extra, field) in [
        (json!({"unique_key": "k"}), "unique_for_secs"),
        (json!({"unique_for_secs": 60}), "unique_key"),
        (
            json!({"unique_key": "has space", "unique_for_secs": 60}),
            "unique_key",
        ),
        (
            json!({"unique_key": "k", "unique_for_secs": 0}),
            "unique_for_secs",
        ),
        (
            json!({"unique_key": "k", "unique_for_secs": 2_592_001}),
            "unique_for_secs",
        ),
    ] {
        let mut body = json!({"kind": "sleep", "payload": {"duration_secs": 1}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let p = problem(app.post_task(&body).await, 422).await;
        assert_eq!(p["field"], field, "{body}: {p}");
    }
}
