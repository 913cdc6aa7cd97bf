//! Batch submit and the task list: filters, newest-first order, cursor pagination.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{problem, spawn_app};

async fn post_batch(app: &crate::helpers::TestApp, body: &Value) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/tasks/batch", app.base))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn evalsha_calls(app: &crate::helpers::TestApp) -> u64 {
    let mut c = app.redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split_once("calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test]
async fn batch_creates_all_in_one_script_call_and_is_idempotent_per_id() {
    let app = spawn_app().await;
    // Warm the script cache so the measured call is a single EVALSHA.
    post_batch(&app, &json!({"tasks": [{"kind": "noop"}]})).await;
    let tasks: Vec<Value> = (0..500)
        .map(|i| json!({"kind": "noop", "payload": {"i": i}, "id": format!("b-{i}")}))
        .collect();
    let before = evalsha_calls(&app).await;
    let res = post_batch(&app, &json!({ "tasks": tasks })).await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        evalsha_calls(&app).await - before,
        1,
        "one round trip per batch"
    );
    assert_eq!(body["created"], 500);
    assert_eq!(body["tasks"][7]["id"], "b-7", "answers in request order");
    assert_eq!(body["tasks"][7]["state"], "queued");

    // Again, overlapping, with a duplicate inside the batch: only new ids are created.
    let again = json!({"tasks": [
        {"kind": "noop", "id": "b-1"}, {"kind": "noop", "id": "new-1"}, {"kind": "noop", "id": "new-1"}
    ]});
    let body: Value = post_batch(&app, &again).await.json().await.unwrap();
    assert_eq!(body["created"], 1, "{body}");
    assert_eq!(
        body["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["created"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        vec![false, true, false]
    );
    let mut c = app.redis.conn().await;
    let jobs: u64 = redis::cmd("LLEN")
        .arg(format!("{}:{{default}}:ready", app.prefix))
        .query_async(&mut c)
        .await
        .unwrap_or(0);
    assert_eq!(jobs, 502, "one job per created task");
}

#[tokio::test]
async fn invalid_batches_are_rejected_whole_naming_the_task() {
    let app = spawn_app().await;
    let bad =
        json!({"tasks": [{"kind": "noop"}, {"kind": "sleep", "payload": {"duration_secs": "x"}}]});
    let p = problem(post_batch(&app, &bad).await, 422).await;
    assert_eq!(p["field"], "tasks[1].payload.duration_secs", "{p}");
    let p = problem(post_batch(&app, &json!({"tasks": []})).await, 422).await;
    assert_eq!(p["field"], "tasks");
    let p = problem(
        post_batch(&app, &json!({"tasks": [{"kind": "noop", "bogus": 1}]})).await,
        400,
    )
    .await;
    assert!(p["field"].as_str().unwrap().starts_with("tasks[0]"), "{p}");
    let many: Vec<Value> = (0..1001).map(|_| json!({"kind": "noop"})).collect();
    problem(post_batch(&app, &json!({ "tasks": many })).await, 413).await;
    let body: Value = app.get("/v1/tasks").await.json().await.unwrap();
    assert_eq!(body["tasks"], json!([]), "nothing was created");
}

#[tokio::test]
async fn list_filters_and_pages_newest_first_without_gaps_or_repeats() {
    let app = spawn_app().await;
    // 230 tasks created in the same millisecond (one batch), plus a few later ones.
    let tasks: Vec<Value> = (0..230)
        .map(|i| json!({"kind": "noop", "queue": if i % 2 == 0 { "even" } else { "odd" }}))
        .collect();
    post_batch(&app, &json!({ "tasks": tasks })).await;
    let late = app
        .post_task(&json!({"kind": "sleep", "payload": {"duration_secs": 1}, "queue": "odd"}))
        .await;
    let late: Value = late.json().await.unwrap();
    let scheduled: Value = app
        .post_task(&json!({"kind": "noop", "queue": "even", "delay_secs": 60}))
        .await
        .json()
        .await
        .unwrap();

    let page_all = |q: String| {
        let app = &app;
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/v1/tasks?limit=50{q}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let body: Value = app.get(&path).await.json().await.unwrap();
                for t in body["tasks"].as_array().unwrap() {
                    seen.push(t.clone());
                }
                match body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => return seen,
                }
            }
        }
    };
    let all = page_all(String::new()).await;
    assert_eq!(all.len(), 232);
    let ids: HashSet<&str> = all.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 232, "no repeats across pages");
    assert_eq!(all[0]["id"], scheduled["id"], "newest first");
    assert_eq!(all[1]["id"], late["id"]);
    let created: Vec<&str> = all
        .iter()
        .map(|t| t["created_at"].as_str().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]));

    let odd = page_all("&queue=odd".into()).await;
    assert_eq!(odd.len(), 116);
    assert!(odd.iter().all(|t| t["queue"] == "odd"));
    let sleeps = page_all("&kind=long_running".into()).await;
    assert_eq!(sleeps.len(), 1, "kind filter resolves aliases");
    let sched = page_all("&state=scheduled".into()).await;
    assert_eq!(sched.len(), 1);
    assert_eq!(sched[0]["id"], scheduled["id"]);
    let queued_even = page_all("&state=queued&queue=even".into()).await;
    assert_eq!(queued_even.len(), 115);

    for q in [
        "state=nope",
        "limit=0",
        "limit=501",
        "cursor=garbage",
        "queue=a%20b",
        "colour=red",
    ] {
        let p = problem(app.get(&format!("/v1/tasks?{q}")).await, 400).await;
        assert_eq!(p["field"], q.split('=').next().unwrap(), "{q}: {p}");
    }
}

/// The same client id from 50 concurrent submits: one 202, 49 × 200, one job enqueued.
#[tokio::test]
async fn concurrent_submits_with_one_id_create_one_task() {
    let app = spawn_app().await;
    let body = json!({"kind": "noop", "id": "same-id"});
    let calls = (0..50).map(|_| app.post_task(&body));
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        49,
        "{statuses:?}"
    );
    let mut c = app.redis.conn().await;
    let jobs: u64 = redis::cmd("LLEN")
        .arg(format!("{}:{{default}}:ready", app.prefix))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
}
