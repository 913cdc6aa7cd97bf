//! The tutorial chapter's manual test, run literally with its curl paths against the real
//! errand-api and errand-worker binaries and a real redis-server.

use std::time::{Duration, Instant};

use errand_testkit::api::get;
use errand_testkit::{Errand, RedisServer, wait_for};
use serde_json::{Value, json};

async fn call(http: &reqwest::Client, method: reqwest::Method, url: String) -> (u16, Value) {
    let res = http.request(method, url).send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json body"))
}

async fn active_jobs(redis: &RedisServer, prefix: &str) -> i64 {
    redis::cmd("LLEN")
        .arg(format!("{prefix}:{{default}}:ready"))
        .query_async(&mut redis.conn().await)
        .await
        .expect("LLEN")
}

/// `POST /tasks/celery/task?task_id=celery123&duration=2` answers at once with PENDING and
/// puts one job on the queue, however often it is posted; a worker runs it (STARTED with
/// progress) to SUCCESS with the chapter's result; posting it again, while it runs and
/// after it ended, answers with the same task and enqueues nothing.
#[tokio::test]
async fn celery_flow_runs_once_to_success_over_the_real_queue() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let prefix = errand
        .env
        .iter()
        .find(|(k, _)| k == "ERRAND__REDIS__KEY_PREFIX")
        .map(|(_, v)| v.clone())
        .unwrap();
    let _api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let submit = format!("{base}/tasks/celery/task?task_id=celery123&duration=2");
    let status_url = format!("{base}/tasks/celery/task/celery123");

    let t = Instant::now();
    let (status, body) = call(&http, reqwest::Method::POST, submit.clone()).await;
    assert!(t.elapsed() < Duration::from_secs(1), "answers at once");
    assert_eq!(status, 202);
    assert_eq!(
        body,
        json!({"task_id": "celery123", "status": "PENDING", "result": null})
    );
    let (status, again) = call(&http, reqwest::Method::POST, submit.clone()).await;
    assert_eq!(status, 200, "same id: the existing task");
    assert_eq!(again, body);
    assert_eq!(active_jobs(&redis, &prefix).await, 1, "one job queued");

    let _worker = errand.spawn_worker(&[]);
    let started = wait_for("celery123 to start", Duration::from_secs(10), || async {
        let (_, b) = call(&http, reqwest::Method::GET, status_url.clone()).await;
        (b["status"] == "STARTED").then_some(b)
    })
    .await;
    assert!(started["progress"]["percent"].is_u64(), "{started}");
    assert!(started["result"].is_null());
    let (status, again) = call(&http, reqwest::Method::POST, submit.clone()).await;
    assert_eq!(status, 200, "same id while running: the existing task");
    assert_eq!(again["status"], "STARTED");
    assert_eq!(active_jobs(&redis, &prefix).await, 0, "nothing enqueued");

    let done = wait_for("celery123 to succeed", Duration::from_secs(15), || async {
        let (_, b) = call(&http, reqwest::Method::GET, status_url.clone()).await;
        (b["status"] == "SUCCESS").then_some(b)
    })
    .await;
    assert_eq!(
        done,
        json!({"task_id": "celery123", "status": "SUCCESS", "result": "task celery123 done"})
    );
    let record = get(&http, &base, "celery123").await;
    assert_eq!(record["result"]["message"], "task celery123 done");
    assert_eq!(record["attempt"], 1, "ran once");

    let (status, again) = call(&http, reqwest::Method::POST, submit).await;
    assert_eq!(status, 200, "same id after it ended: the existing task");
    assert_eq!(again, done);
    assert_eq!(active_jobs(&redis, &prefix).await, 0, "nothing enqueued");
    assert_eq!(
        get(&http, &base, "celery123").await,
        record,
        "not run again"
    );
}

/// The rest of the chapter's curl list against the binary: the two await styles at their
/// default 1 s per operation, the basic endpoint, and an in-process background task.
#[tokio::test]
async fn chapter_demo_routes_answer_as_the_chapter_describes() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let (seq, con) = tokio::join!(
        call(
            &http,
            reqwest::Method::GET,
            format!("{base}/async/await-sequential")
        ),
        call(
            &http,
            reqwest::Method::GET,
            format!("{base}/async/gather-concurrent")
        ),
    );
    assert_eq!((seq.0, con.0), (200, 200));
    let seq_ms = seq.1["total_ms"].as_u64().unwrap();
    let con_ms = con.1["total_ms"].as_u64().unwrap();
    assert!((3000..4000).contains(&seq_ms), "sequential ~3 s: {}", seq.1);
    assert!((1000..1500).contains(&con_ms), "concurrent ~1 s: {}", con.1);

    let (status, basic) = call(&http, reqwest::Method::GET, format!("{base}/async/basic")).await;
    assert_eq!(status, 200);
    assert!(basic["message"].is_string());

    let (status, bg) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/tasks/background/simple?task_id=test123&duration=1"),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(bg["status"], "pending");
    let done = wait_for("test123 to complete", Duration::from_secs(10), || async {
        let (_, b) = call(
            &http,
            reqwest::Method::GET,
            format!("{base}/tasks/background/status/test123"),
        )
        .await;
        (b["status"] == "completed").then_some(b)
    })
    .await;
    assert_eq!(done["message"], "task test123 done");
}
