//! Pausing and resuming a queue over the API, and (with the real worker binary) that a
//! paused queue's tasks wait while other queues run, then run once it is resumed.

use std::time::Duration;

use errand_core::settings::{ApiKey, Scope};
use errand_testkit::{Errand, RedisServer, api, wait_for};
use serde_json::{Value, json};

use crate::helpers::{problem, spawn_app, spawn_app_with};

async fn post(app: &crate::helpers::TestApp, path: &str) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
}

async fn queue(app: &crate::helpers::TestApp, name: &str) -> Value {
    let list: Value = app.get("/v1/queues").await.json().await.unwrap();
    list["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("queue {name} listed: {list}"))
}

#[tokio::test]
async fn pause_and_resume_show_in_the_queue_list_and_repeat_safely() {
    let app = spawn_app().await;
    let res = app
        .post_task(&json!({"kind": "sleep", "queue": "mail", "payload": {"duration_secs": 0}}))
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(queue(&app, "mail").await["paused"], false);

    let res = post(&app, "/v1/queues/mail/pause").await;
    assert_eq!(res.status(), 200);
    let first: Value = res.json().await.unwrap();
    assert_eq!(first["name"], "mail");
    assert_eq!(first["paused"], true);
    assert!(first["paused_at"].is_string(), "{first}");
    assert_eq!(queue(&app, "mail").await["paused"], true);
    let again: Value = post(&app, "/v1/queues/mail/pause")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["paused_at"], first["paused_at"],
        "a repeat keeps the first time"
    );

    // Submits are still accepted while paused.
    let res = app
        .post_task(&json!({"kind": "sleep", "queue": "mail", "payload": {"duration_secs": 0}}))
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(queue(&app, "mail").await["counts"]["queued"], 2);

    let res = post(&app, "/v1/queues/mail/resume").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"name": "mail", "paused": false, "paused_at": null})
    );
    assert_eq!(queue(&app, "mail").await["paused"], false);
    assert_eq!(post(&app, "/v1/queues/mail/resume").await.status(), 200);

    // A queue nobody submitted to can be paused ahead of time and is then listed.
    assert_eq!(post(&app, "/v1/queues/later/pause").await.status(), 200);
    assert_eq!(queue(&app, "later").await["paused"], true);
}

#[tokio::test]
async fn a_malformed_queue_name_is_a_400_naming_it() {
    let app = spawn_app().await;
    for path in [
        "/v1/queues/bad%20name/pause",
        &format!("/v1/queues/{}/resume", "q".repeat(65)),
        "/v1/queues/%C3%A9/pause",
    ] {
        let body = problem(post(&app, path).await, 400).await;
        assert_eq!(body["field"], "queue", "{path}: {body}");
    }
}

#[tokio::test]
async fn queue_controls_need_an_admin_key() {
    let app = spawn_app_with(|s| {
        s.api.api_keys = vec![
            ApiKey::new(Scope::Submit, "submit-key-0123456789"),
            ApiKey::new(Scope::Admin, "admin-key-0123456789"),
        ];
    })
    .await;
    let url = format!("{}/v1/queues/default/pause", app.base);
    problem(app.http.post(&url).send().await.unwrap(), 401).await;
    let res = app
        .http
        .post(&url)
        .bearer_auth("submit-key-0123456789")
        .send()
        .await
        .unwrap();
    problem(res, 403).await;
    let res = app
        .http
        .post(&url)
        .bearer_auth("admin-key-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn pause_and_resume_are_in_the_openapi_document() {
    let app = spawn_app().await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    for op in ["pause", "resume"] {
        let path = format!("/v1/queues/{{queue}}/{op}");
        let post = &doc["paths"][&path]["post"];
        assert!(post.is_object(), "{path} documented");
        assert!(post["responses"]["200"].is_object() && post["responses"]["400"].is_object());
    }
    assert!(doc["components"]["schemas"]["QueuePause"].is_object());
    assert!(doc["components"]["schemas"]["QueueInfo"]["properties"]["paused"].is_object());
}

/// The real binaries: a worker serving two queues keeps running the other queue's tasks
/// while `held`'s wait (proof it is fetching, so the wait is the pause's doing), and runs
/// them once `held` is resumed.
#[tokio::test]
async fn a_paused_queue_s_tasks_wait_while_others_run_and_run_after_resume() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&["--queues", "held=4,free=4"]);
    let (http, base) = (reqwest::Client::new(), errand.base_url());
    let pause = http
        .post(format!("{base}/v1/queues/held/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(pause.status(), 200);

    let sleep =
        |queue: &str| json!({"kind": "sleep", "queue": queue, "payload": {"duration_secs": 0}});
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            api::submit(&http, &base, sleep("held")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for round in 0..3 {
        let free = api::submit(&http, &base, sleep("free")).await;
        let id = free["id"].as_str().unwrap();
        api::wait_state(&http, &base, id, "succeeded", Duration::from_secs(20)).await;
        for h in &held {
            let r = api::get(&http, &base, h).await;
            assert_eq!(
                r["state"], "queued",
                "round {round}: paused task {h} stays queued: {r}"
            );
        }
    }

    let resume = http
        .post(format!("{base}/v1/queues/held/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(resume.status(), 200);
    // Resume wakes the worker: well within its fallback tick.
    wait_for(
        "the held tasks to run after resume",
        Duration::from_secs(10),
        || {
            let (http, base, held) = (http.clone(), base.clone(), held.clone());
            async move {
                for h in &held {
                    if api::get(&http, &base, h).await["state"] != "succeeded" {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
}
