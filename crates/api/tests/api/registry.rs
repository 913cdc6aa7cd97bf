//! The kind registry as the api reads it: kinds registered in Redis (as a worker's start
//! and heartbeat write them) are accepted, validated by their JSON Schema, listed and
//! documented by a stock api that has never seen their code.

use std::time::Duration;

use chrono::Utc;
use errand_core::{
    TaskStore,
    settings::RedisSettings,
    store::{self, KindDefinition, WorkerInfo, WorkerKind, WorkerQueue},
};
use errand_testkit::wait_for;
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app, spawn_app_on};

fn store_of(app: &TestApp) -> TaskStore {
    let conn = store::connect(&RedisSettings {
        url: app.redis.url(),
        key_prefix: app.prefix.clone(),
        response_timeout_ms: 2000,
        connect_timeout_ms: 2000,
        tls_ca_file: None,
    })
    .unwrap();
    TaskStore::new(conn, store::Layout::new(&app.prefix))
}

/// A kind no errand binary knows: a report over rows, with bounds in its schema.
fn report(max_rows: u64) -> KindDefinition {
    KindDefinition {
        name: "acme.report".into(),
        aliases: vec!["report".into()],
        summary: "Sums rows.".into(),
        idempotent: true,
        payload_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["rows"],
            "properties": {
                "rows": {"type": "array", "maxItems": max_rows,
                         "items": {"type": "object", "required": ["n"],
                                   "properties": {"n": {"type": "integer"}}}},
                "title": {"type": "string", "maxLength": 20}
            }
        }),
        result_schema: json!({"type": "object", "properties": {"total": {"type": "integer"}}}),
        example: json!({"rows": [{"n": 1}]}),
        payload_name: "ReportPayload".into(),
        result_name: "ReportResult".into(),
    }
}

fn worker(name: &str, started_secs_ago: i64, def: &KindDefinition) -> WorkerInfo {
    let started = Utc::now() - chrono::Duration::seconds(started_secs_ago);
    WorkerInfo {
        name: name.into(),
        host: "h".into(),
        pid: 1,
        queues: vec![WorkerQueue {
            name: "reports".into(),
            concurrency: 4,
        }],
        running: 0,
        running_ids: vec![],
        stopping: false,
        started_at: started,
        last_seen: Utc::now(),
        kinds: vec![WorkerKind {
            name: def.name.clone(),
            digest: def.digest(),
        }],
    }
}

async fn kinds(app: &TestApp) -> Vec<Value> {
    let res = app.get("/v1/kinds").await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn kind(app: &TestApp, name: &str) -> Option<Value> {
    kinds(app).await.into_iter().find(|k| k["name"] == name)
}

#[tokio::test]
async fn a_registered_kind_is_accepted_at_once_and_validated_by_its_schema() {
    let app = spawn_app().await;
    // Known before: the built-in kinds the api seeded; not this one.
    let body = problem(
        app.post_task(&json!({"kind": "acme.report", "payload": {"rows": []}}))
            .await,
        422,
    )
    .await;
    assert_eq!(body["field"], "kind");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("acme.report") && detail.contains("noop") && detail.contains("sleep"),
        "the refusal lists the known kinds: {detail}"
    );

    // A worker registers it (as its start does); the very next submit is accepted: the
    // api reads the registry again on a kind it does not know.
    store_of(&app)
        .register_kinds(&[report(3)], "w1", true)
        .await
        .unwrap();
    let res = app
        .post_task(&json!({"kind": "report", "payload": {"rows": [{"n": 2}]}}))
        .await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let task: Value = res.json().await.unwrap();
    assert_eq!(
        task["kind"], "acme.report",
        "an alias is stored as the kind"
    );

    for (payload, field) in [
        (json!({}), "payload.rows"),
        (json!({"rows": [], "extra": 1}), "payload.extra"),
        (
            json!({"rows": [{"n": 1}, {"n": "two"}]}),
            "payload.rows[1].n",
        ),
        (
            json!({"rows": [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]}),
            "payload.rows",
        ),
        (
            json!({"rows": [], "title": "x".repeat(21)}),
            "payload.title",
        ),
        (json!([1]), "payload"),
    ] {
        let body = problem(
            app.post_task(&json!({"kind": "acme.report", "payload": payload}))
                .await,
            422,
        )
        .await;
        assert_eq!(body["field"], field, "{payload}: {body}");
    }
    // A batch refuses by position, a schedule as a submit would.
    let res = app
        .http
        .post(format!("{}/v1/tasks/batch", app.base))
        .json(&json!({"tasks": [
            {"kind": "noop"},
            {"kind": "acme.report", "payload": {"rows": [{"n": "x"}]}}
        ]}))
        .send()
        .await
        .unwrap();
    let body = problem(res, 422).await;
    assert_eq!(body["field"], "tasks[1].payload.rows[0].n");
    let res = app
        .http
        .post(format!("{}/v1/schedules", app.base))
        .json(&json!({"cron": "0 * * * * *", "kind": "acme.report", "payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 422).await["field"], "payload.rows");

    // Listed, with no worker running it yet: accepted tasks wait.
    let k = kind(&app, "acme.report").await.expect("listed");
    assert_eq!(k["aliases"], json!(["report"]));
    assert_eq!(k["workers"], json!([]));
    assert_eq!(k["registered_by"], "w1");
    assert_eq!(k["digest"], report(3).digest());
    assert_eq!(k["payload_schema"], report(3).payload_schema);

    // Documented: its own branch in the submit union, its schemas as components.
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["ReportPayload"], report(3).payload_schema);
    let mapping = &schemas["SubmitTask"]["discriminator"]["mapping"];
    assert_eq!(
        mapping["acme.report"], "#/components/schemas/SubmitAcmeReport",
        "{mapping}"
    );
    assert_eq!(mapping["report"], mapping["acme.report"]);
    assert!(mapping["sleep"].is_string(), "built-ins still there");
}

#[tokio::test]
async fn an_api_started_while_no_worker_runs_still_validates_what_was_registered() {
    let app = spawn_app().await;
    store_of(&app)
        .register_kinds(&[report(3)], "w-gone", true)
        .await
        .unwrap();
    let redis = app.redis;
    // A second api on the same Redis, started after the worker is gone.
    let again = spawn_app_on(redis, |_| {});
    let body = problem(
        again
            .post_task(&json!({"kind": "acme.report", "payload": {"rows": [{"n": false}]}}))
            .await,
        422,
    )
    .await;
    assert_eq!(body["field"], "payload.rows[0].n");
    let res = again
        .post_task(&json!({"kind": "acme.report", "payload": {"rows": [{"n": 1}]}}))
        .await;
    assert_eq!(res.status(), 202);
}

#[tokio::test]
async fn the_newest_live_workers_schema_validates_during_a_rolling_deploy() {
    let app = spawn_app_with_fast_refresh().await;
    let store = store_of(&app);
    let (v1, v2) = (report(3), report(5));
    // The old worker, started an hour ago, and the new one, started now.
    store
        .register_kinds(std::slice::from_ref(&v1), "old", true)
        .await
        .unwrap();
    store
        .heartbeat(&worker("old", 3600, &v1), Duration::from_secs(30))
        .await
        .unwrap();
    store
        .register_kinds(std::slice::from_ref(&v2), "new", true)
        .await
        .unwrap();
    store
        .heartbeat(&worker("new", 1, &v2), Duration::from_secs(30))
        .await
        .unwrap();
    let five = json!({"kind": "acme.report", "payload": {"rows": [{"n": 1}, {"n": 1}, {"n": 1}, {"n": 1}, {"n": 1}]}});
    wait_for(
        "the new schema to validate",
        Duration::from_secs(10),
        || async { (app.post_task(&five).await.status() == 202).then_some(()) },
    )
    .await;
    let k = kind(&app, "acme.report").await.unwrap();
    assert_eq!(k["digest"], v2.digest());
    assert_eq!(k["schemas_differ"], true);
    assert_eq!(k["workers"].as_array().unwrap().len(), 2);
    assert_eq!(k["queues"], json!(["reports"]));

    // Rolled back: the new worker is gone, the old one's schema validates again.
    store.worker_gone("new").await.unwrap();
    wait_for(
        "the old schema to validate",
        Duration::from_secs(10),
        || async { (app.post_task(&five).await.status() == 422).then_some(()) },
    )
    .await;
    let k = kind(&app, "acme.report").await.unwrap();
    assert_eq!(k["digest"], v1.digest());
    assert_eq!(k["schemas_differ"], false);

    // Removing it is refused while a live worker runs it, then works.
    let delete = || async {
        app.http
            .delete(format!("{}/v1/kinds/acme.report", app.base))
            .send()
            .await
            .unwrap()
    };
    let body = problem(delete().await, 409).await;
    assert!(
        body["type"].as_str().unwrap().ends_with("kind-in-use"),
        "{body}"
    );
    store.worker_gone("old").await.unwrap();
    assert_eq!(delete().await.status(), 204);
    problem(delete().await, 404).await;
    let body = problem(app.post_task(&five).await, 422).await;
    assert_eq!(body["field"], "kind");
    assert!(kind(&app, "acme.report").await.is_none());
}

async fn spawn_app_with_fast_refresh() -> TestApp {
    crate::helpers::spawn_app_with(|s| s.api.kinds_refresh_ms = 100).await
}

#[tokio::test]
async fn a_registry_redis_will_not_answer_is_a_503_not_a_500() {
    let app = spawn_app().await;
    // The api has not read the registry yet when Redis stops answering.
    app.redis.pause();
    let res = app.get("/v1/kinds").await;
    assert!(res.headers().contains_key("retry-after"));
    problem(res, 503).await;
    let res = app.post_task(&json!({"kind": "noop", "payload": {}})).await;
    assert!(res.headers().contains_key("retry-after"));
    problem(res, 503).await;
    app.redis.resume();
    wait_for("submits to work again", Duration::from_secs(15), || async {
        (app.post_task(&json!({"kind": "noop"})).await.status() == 202).then_some(())
    })
    .await;
}
