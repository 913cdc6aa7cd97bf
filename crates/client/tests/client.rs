//! errand-client against the real errand-api and errand-worker binaries and a real Redis.
//! Run `cargo build --bins` first (the harness starts target/debug binaries).

use std::{collections::HashSet, time::Duration};

use errand_client::{Client, CreateSchedule, Error, ListTasks, SubmitTask, TaskEvent, TaskState};
use errand_testkit::{Errand, Proc, RedisServer, free_port, wait_for};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

struct Env {
    _redis: RedisServer,
    _api: Proc,
    _worker: Option<Proc>,
    client: Client,
}

async fn env_with(worker: bool, tweak: impl FnOnce(Errand) -> Errand) -> (Env, Errand) {
    let redis = RedisServer::start().await;
    let errand = tweak(Errand::new(&redis));
    let api = errand.spawn_api().await;
    let w = worker.then(|| errand.spawn_worker(&[]));
    let client = Client::new(errand.base_url()).unwrap();
    (
        Env {
            _redis: redis,
            _api: api,
            _worker: w,
            client,
        },
        errand,
    )
}

async fn env(worker: bool) -> Env {
    env_with(worker, |e| e).await.0
}

const LONG: Duration = Duration::from_secs(30);

/// The crate-level example, run for real: submit, then follow the events to the end.
#[tokio::test]
async fn submit_then_watch_reports_progress_and_ends_with_the_result() {
    let e = env(true).await;
    let task = e
        .client
        .submit(&SubmitTask::new("sleep").payload(json!({"duration_secs": 2})))
        .await
        .unwrap();
    assert_eq!(task.kind, "sleep");
    let events: Vec<TaskEvent> = tokio::time::timeout(LONG, async {
        e.client
            .watch(task.id.as_str())
            .await
            .unwrap()
            .try_collect()
            .await
    })
    .await
    .expect("stream ends")
    .expect("no stream error");
    let states: Vec<TaskState> = events
        .iter()
        .filter_map(|ev| match ev {
            TaskEvent::State(r) => Some(r.state),
            _ => None,
        })
        .collect();
    assert!(states.contains(&TaskState::Running), "{states:?}");
    assert_eq!(states.last(), Some(&TaskState::Succeeded), "{states:?}");
    let percents: Vec<u8> = events
        .iter()
        .filter(|ev| matches!(ev, TaskEvent::Progress(_)))
        .filter_map(|ev| ev.record()?.progress.as_ref().map(|p| p.percent))
        .collect();
    assert!(
        percents.iter().any(|p| (1..100).contains(p)),
        "a progress event between 0 and 100: {percents:?}"
    );
    let last = events.last().unwrap().record().unwrap();
    assert!(last.result.is_some(), "{last:?}");
    assert!(events.last().unwrap().is_final());
}

#[tokio::test]
async fn wait_long_polls_to_the_terminal_record_and_get_reads_it_back() {
    let e = env(true).await;
    let t = e
        .client
        .submit(
            &SubmitTask::new("sleep")
                .payload(json!({"duration_secs": 1}))
                .id("client-wait-1"),
        )
        .await
        .unwrap();
    assert_eq!(t.id.as_str(), "client-wait-1");
    let done = e.client.wait("client-wait-1", LONG).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(e.client.get("client-wait-1").await.unwrap(), done);
    // Same id again: the existing task, nothing new.
    let again = e
        .client
        .submit(
            &SubmitTask::new("sleep")
                .payload(json!({"duration_secs": 1}))
                .id("client-wait-1"),
        )
        .await
        .unwrap();
    assert_eq!(again.state, TaskState::Succeeded);

    // A wait shorter than the task answers with the record as it is.
    let slow = e
        .client
        .submit(&SubmitTask::new("sleep").payload(json!({"duration_secs": 10})))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let r = e
        .client
        .wait(slow.id.as_str(), Duration::from_secs(1))
        .await
        .unwrap();
    assert!(!r.state.is_terminal(), "{:?}", r.state);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn refusals_carry_the_problem_body() {
    let e = env(false).await;
    let err = e
        .client
        .submit(&SubmitTask::new("no-such-kind"))
        .await
        .unwrap_err();
    let p = err.problem().expect("an API refusal").clone();
    assert_eq!(p.status, 422);
    assert_eq!(p.field.as_deref(), Some("kind"));
    assert!(p.detail.contains("no-such-kind"), "{p:?}");

    let err = e
        .client
        .submit(&SubmitTask::new("sleep").payload(json!({"duration_secs": "five"})))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert!(
        err.problem()
            .unwrap()
            .field
            .as_deref()
            .unwrap()
            .contains("duration_secs"),
        "{err}"
    );

    let err = e.client.get("never-submitted").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    // An id the server refuses is sent encoded and refused as a bad id, not a wrong route.
    let err = e.client.get("a b/c").await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert_eq!(err.problem().unwrap().field.as_deref(), Some("id"));
    let err = e.client.watch("never-submitted").await.err().unwrap();
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn no_server_is_unreachable_not_a_refusal() {
    let c = Client::builder(format!("http://127.0.0.1:{}", free_port()))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = c.kinds().await.unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");
    assert_eq!(err.status(), None);
    assert!(matches!(
        Client::new("localhost:8080"),
        Err(Error::InvalidUrl(_))
    ));
}

#[tokio::test]
async fn api_key_is_sent_as_bearer() {
    let (e, errand) = env_with(false, |e| e.with("ERRAND__API__API_KEYS", "k-one,k-two")).await;
    let err = e.client.kinds().await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    let keyed = Client::builder(errand.base_url())
        .api_key("k-two")
        .build()
        .unwrap();
    let kinds = keyed.kinds().await.unwrap();
    assert!(kinds.iter().any(|k| k.name == "sleep"));
    let wrong = Client::builder(errand.base_url())
        .api_key("nope")
        .build()
        .unwrap();
    assert_eq!(wrong.queues().await.unwrap_err().status(), Some(401));
}

#[tokio::test]
async fn list_pages_through_every_match() {
    let e = env(false).await;
    let tasks: Vec<SubmitTask> = (0..7)
        .map(|i| {
            SubmitTask::new("noop")
                .payload(json!({"i": i}))
                .queue("paged")
        })
        .collect();
    let b = e.client.submit_batch(&tasks).await.unwrap();
    assert_eq!((b.created, b.existing), (7, 0));
    let other = e
        .client
        .submit(&SubmitTask::new("noop").queue("elsewhere"))
        .await
        .unwrap();
    let q = ListTasks {
        queue: Some("paged".into()),
        limit: Some(3),
        ..Default::default()
    };
    let first = e.client.list_page(&q).await.unwrap();
    assert!(first.tasks.len() <= 3);
    assert!(first.next_cursor.is_some());
    let all: Vec<_> = e.client.list(q).try_collect().await.unwrap();
    let ids: HashSet<_> = all.iter().map(|r| r.id.clone()).collect();
    let want: HashSet<_> = b.tasks.iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids, want);
    assert_eq!(all.len(), 7, "no duplicates across pages");
    assert!(!ids.contains(&other.id));
    let queued: Vec<_> = e
        .client
        .list(ListTasks {
            state: Some(TaskState::Queued),
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(queued.len(), 8);
}

#[tokio::test]
async fn cancel_and_retry_change_the_course() {
    let e = env(false).await;
    let t = e
        .client
        .submit(&SubmitTask::new("noop").delay_secs(600))
        .await
        .unwrap();
    assert_eq!(t.state, TaskState::Scheduled);
    let c = e.client.cancel(t.id.as_str()).await.unwrap();
    assert_eq!(c.state, TaskState::Cancelled);
    let again = e.client.cancel(t.id.as_str()).await.unwrap_err();
    assert_eq!(again.status(), Some(409));
    let r = e.client.retry(t.id.as_str()).await.unwrap();
    assert_eq!(r.state, TaskState::Queued);
    assert_eq!(
        e.client.retry(t.id.as_str()).await.unwrap_err().status(),
        Some(409)
    );
}

#[tokio::test]
async fn operating_views_and_schedules() {
    let e = env(true).await;
    let workers = wait_for("a worker to register", LONG, || async {
        e.client.workers().await.ok().filter(|w| !w.is_empty())
    })
    .await;
    assert!(workers[0].pid > 0);
    e.client.submit(&SubmitTask::new("noop")).await.unwrap();
    let queues = e.client.queues().await.unwrap();
    assert!(queues.iter().any(|q| q.name == "default"), "{queues:?}");
    let kinds = e.client.kinds().await.unwrap();
    let sleep = kinds.iter().find(|k| k.name == "sleep").unwrap();
    assert!(sleep.payload_schema.is_object());

    let def = CreateSchedule {
        id: Some("nightly".into()),
        cron: "0 3 * * *".into(),
        kind: "noop".into(),
        ..Default::default()
    };
    let s = e.client.create_schedule(&def).await.unwrap();
    assert!(s.enabled && s.next_run_at.is_some());
    for i in 0..3 {
        e.client
            .create_schedule(&CreateSchedule {
                id: Some(format!("s{i}")),
                ..def.clone()
            })
            .await
            .unwrap();
    }
    let all: Vec<_> = e.client.schedules().try_collect().await.unwrap();
    assert_eq!(all.len(), 4);
    let off = e
        .client
        .set_schedule_enabled("nightly", false)
        .await
        .unwrap();
    assert!(!off.enabled && off.next_run_at.is_none());
    let on = e
        .client
        .set_schedule_enabled("nightly", true)
        .await
        .unwrap();
    assert!(on.enabled);
    let bad = e
        .client
        .create_schedule(&CreateSchedule {
            cron: "not a cron".into(),
            ..def.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.status(), Some(422));
    assert_eq!(bad.problem().unwrap().field.as_deref(), Some("cron"));
    e.client.delete_schedule("nightly").await.unwrap();
    assert_eq!(
        e.client.schedule("nightly").await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        e.client
            .delete_schedule("nightly")
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    let left: Vec<_> = e.client.schedules().map(|s| s.unwrap().id).collect().await;
    assert_eq!(left.len(), 3);
}

#[tokio::test]
async fn redis_down_is_a_503_with_retry_after() {
    let mut redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let client = Client::new(errand.base_url()).unwrap();
    client.queues().await.unwrap();
    redis.kill().await;
    let err = wait_for("the API to notice Redis is gone", LONG, || async {
        client.queues().await.err()
    })
    .await;
    match err {
        Error::Api {
            problem,
            retry_after,
        } => {
            assert_eq!(problem.status, 503);
            assert!(retry_after.is_some_and(|s| s > 0), "{retry_after:?}");
        }
        other => panic!("expected a 503 refusal, got {other:?}"),
    }
}

/// The tour example that docs/client.md quotes, run against a real server: what the guide
/// shows is what happens. (`cargo test`/`nextest` build examples along with the tests.)
#[tokio::test]
async fn the_documented_tour_runs() {
    let e = env(true).await;
    let exe = errand_testkit::bin_path("errand-api")
        .parent()
        .unwrap()
        .join("examples/tour");
    assert!(exe.exists(), "{} not built", exe.display());
    let out = tokio::time::timeout(
        LONG,
        tokio::process::Command::new(&exe)
            .env("ERRAND_URL", e.client.base_url())
            .env_remove("ERRAND_API_KEY")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the tour ends")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("now succeeded"), "{stdout}");
    assert!(stdout.contains("percent: 33"), "progress events: {stdout}");
    assert!(stdout.contains("refused: field Some(\"kind\")"), "{stdout}");
}

/// A server with a shorter long-poll limit than the client's 30 s: the client shortens its
/// polls instead of failing.
#[tokio::test]
async fn wait_adapts_to_a_short_server_limit() {
    let (e, _) = env_with(true, |e| e.with("ERRAND__API__MAX_WAIT_SECS", "3")).await;
    let t = e
        .client
        .submit(&SubmitTask::new("sleep").payload(json!({"duration_secs": 5})))
        .await
        .unwrap();
    let done = e.client.wait(t.id.as_str(), LONG).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
}
