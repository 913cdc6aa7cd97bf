//! `/v1/schedules` in process: validation, idempotent create, listing, enable/disable,
//! delete. Firing is the worker's and is tested end to end in crates/worker/tests/worker/schedules.rs.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app};

impl TestApp {
    async fn post_schedule(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/schedules", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn post_path(&self, path: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn delete(&self, path: &str) -> reqwest::Response {
        self.http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn create_answers_201_with_location_and_the_first_tick_in_its_time_zone() {
    let app = spawn_app().await;
    let before = Utc::now();
    let res = app
        .post_schedule(&json!({
            "id": "paris-9am", "cron": "0 9 * * *", "timezone": "Europe/Paris",
            "kind": "long_running", "payload": {"duration_secs": 1}
        }))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["location"], "/v1/schedules/paris-9am");
    let s: Value = res.json().await.unwrap();
    assert_eq!(
        s["kind"], "sleep",
        "aliases are stored as the canonical kind"
    );
    assert_eq!(s["queue"], "default");
    assert_eq!(s["enabled"], true);
    assert_eq!(s["misfire"], "run_once");
    assert_eq!(s["max_attempts"], 3, "task defaults applied");
    assert_eq!(s["run_count"], 0);
    assert!(s["last_run_at"].is_null() && s["last_task_id"].is_null());
    let next = time(&s["next_run_at"]);
    assert!(next > before && next - before <= chrono::Duration::days(1));
    // 09:00 in Paris is 08:00Z in winter (CET) and 07:00Z in summer (CEST).
    let utc = next.format("%H:%M:%S").to_string();
    assert!(utc == "08:00:00" || utc == "07:00:00", "{next}");

    let got: Value = app
        .get("/v1/schedules/paris-9am")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, s);
}

#[tokio::test]
async fn same_id_again_is_200_when_identical_and_409_when_not() {
    let app = spawn_app().await;
    let body = json!({"id": "tick", "cron": "*/5 * * * * *", "kind": "noop", "payload": {"a": 1}});
    let first: Value = app.post_schedule(&body).await.json().await.unwrap();
    let again = app.post_schedule(&body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["location"], "/v1/schedules/tick");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    // Defaults spelled out are the same definition.
    let explicit = json!({"id": "tick", "cron": "*/5 * * * * *", "timezone": "UTC", "kind": "noop",
        "payload": {"a": 1}, "queue": "default", "enabled": true, "misfire": "run_once", "max_attempts": 3});
    assert_eq!(app.post_schedule(&explicit).await.status(), 200);

    for changed in [
        json!({"id": "tick", "cron": "*/6 * * * * *", "kind": "noop", "payload": {"a": 1}}),
        json!({"id": "tick", "cron": "*/5 * * * * *", "kind": "noop", "payload": {"a": 2}}),
        json!({"id": "tick", "cron": "*/5 * * * * *", "kind": "noop", "payload": {"a": 1}, "misfire": "skip"}),
    ] {
        let p = problem(app.post_schedule(&changed).await, 409).await;
        assert_eq!(p["type"], "https://errand.dev/problems/schedule-exists");
    }
    let still: Value = app.get("/v1/schedules/tick").await.json().await.unwrap();
    assert_eq!(
        still["payload"],
        json!({"a": 1}),
        "the original is untouched"
    );
}

#[tokio::test]
async fn bad_definitions_get_a_422_naming_the_field() {
    let app = spawn_app().await;
    let base = json!({"cron": "* * * * *", "kind": "noop"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (with("cron", json!("every minute")), "cron"),
        (with("cron", json!("* * * *")), "cron"),
        (with("cron", json!("0 0 0 1 1 * 2030")), "cron"),
        (with("cron", json!("61 * * * *")), "cron"),
        (with("cron", json!("0 0 30 2 *")), "cron"),
        (with("timezone", json!("Mars/Olympus")), "timezone"),
        (with("timezone", json!("")), "timezone"),
        (with("kind", json!("nope")), "kind"),
        (
            json!({"cron": "* * * * *", "kind": "sleep", "payload": {"duration_secs": "five"}}),
            "payload.duration_secs",
        ),
        (
            json!({"cron": "* * * * *", "kind": "sleep", "payload": {"duration_secs": 1, "x": 1}}),
            "payload.x",
        ),
        (with("misfire", json!("always")), "misfire"),
        (with("queue", json!("no spaces")), "queue"),
        (with("max_attempts", json!(0)), "max_attempts"),
        (with("timeout_secs", json!(0)), "timeout_secs"),
        (with("result_ttl_secs", json!(0)), "result_ttl_secs"),
        (with("id", json!("has:colon")), "id"),
        (with("id", json!("x".repeat(101))), "id"),
    ];
    for (body, field) in cases {
        let p = problem(app.post_schedule(&body).await, 422).await;
        assert_eq!(p["field"], field, "{body} → {p}");
    }
    // Shape errors are 400s naming the field, as for tasks.
    let p = problem(
        app.post_schedule(&json!({"cron": 5, "kind": "noop"})).await,
        400,
    )
    .await;
    assert_eq!(p["field"], "cron");
    let p = problem(
        app.post_schedule(&json!({"cron": "* * * * *", "kind": "noop", "extra": 1}))
            .await,
        400,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("extra"), "{p}");
    let listed: Value = app.get("/v1/schedules").await.json().await.unwrap();
    assert_eq!(listed["schedules"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn unknown_ids_are_404_and_malformed_ids_400() {
    let app = spawn_app().await;
    let p = problem(app.get("/v1/schedules/nope").await, 404).await;
    assert_eq!(p["type"], "https://errand.dev/problems/schedule-not-found");
    problem(app.delete("/v1/schedules/nope").await, 404).await;
    problem(app.post_path("/v1/schedules/nope/enable").await, 404).await;
    problem(app.post_path("/v1/schedules/nope/disable").await, 404).await;
    let p = problem(app.get("/v1/schedules/a:b").await, 400).await;
    assert_eq!(p["field"], "id");
    let p = problem(app.get("/v1/schedules?cursor=a:b").await, 400).await;
    assert_eq!(p["field"], "cursor");
    let p = problem(app.get("/v1/schedules?limit=0").await, 400).await;
    assert_eq!(p["field"], "limit");
}

#[tokio::test]
async fn disable_clears_the_next_tick_enable_sets_one_after_now_delete_removes() {
    let app = spawn_app().await;
    let created: Value = app
        .post_schedule(&json!({"id": "s", "cron": "0 * * * *", "kind": "noop", "enabled": false}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["enabled"], false);
    assert!(created["next_run_at"].is_null(), "{created}");

    let before = Utc::now();
    let res = app.post_path("/v1/schedules/s/enable").await;
    assert_eq!(res.status(), 200);
    let enabled: Value = res.json().await.unwrap();
    assert_eq!(enabled["enabled"], true);
    let next = time(&enabled["next_run_at"]);
    assert!(next > before && next - before <= chrono::Duration::hours(1));
    assert_eq!(next.timestamp() % 3600, 0, "on the hour: {next}");
    assert!(time(&enabled["updated_at"]) >= time(&created["updated_at"]));
    let again: Value = app
        .post_path("/v1/schedules/s/enable")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, enabled, "enabling twice changes nothing");

    let disabled: Value = app
        .post_path("/v1/schedules/s/disable")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(disabled["enabled"], false);
    assert!(disabled["next_run_at"].is_null());
    let mut conn = app.redis.conn().await;
    let firing: i64 = redis::cmd("ZCARD")
        .arg(format!("{}:{{~schedules}}:due", app.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(firing, 0, "a disabled schedule is not in the firing zset");

    let res = app.delete("/v1/schedules/s").await;
    assert_eq!(res.status(), 204);
    problem(app.get("/v1/schedules/s").await, 404).await;
    problem(app.delete("/v1/schedules/s").await, 404).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:{{~schedules}}*", app.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, Vec::<String>::new(), "no schedule key left behind");
}

#[tokio::test]
async fn listing_pages_through_every_schedule_in_id_order() {
    let app = spawn_app().await;
    for i in (0..7).rev() {
        let res = app
            .post_schedule(&json!({"id": format!("s{i}"), "cron": "@daily", "kind": "noop"}))
            .await;
        assert_eq!(res.status(), 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("/v1/schedules?limit=3&cursor={c}"),
            None => "/v1/schedules?limit=3".into(),
        };
        let page: Value = app.get(&url).await.json().await.unwrap();
        pages += 1;
        for s in page["schedules"].as_array().unwrap() {
            seen.push(s["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("s{i}")).collect::<Vec<_>>());
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn openapi_documents_the_schedule_routes() {
    let app = spawn_app().await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    for (path, method) in [
        ("/v1/schedules", "post"),
        ("/v1/schedules", "get"),
        ("/v1/schedules/{id}", "get"),
        ("/v1/schedules/{id}", "delete"),
        ("/v1/schedules/{id}/enable", "post"),
        ("/v1/schedules/{id}/disable", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(op["tags"], json!(["schedules"]), "{method} {path}");
    }
    for s in ["Schedule", "CreateSchedule", "SchedulePage", "Misfire"] {
        assert!(doc["components"]["schemas"][s].is_object(), "schema {s}");
    }
}
