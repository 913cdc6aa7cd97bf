//! The claim fence against a real redis-server: each hole the state-fences review found,
//! called in the order that opened it (docs/task-lifecycle.md, "Claims").

use std::time::Duration;

use chrono::Utc;
use errand_core::{
    TaskStore,
    store::{Cancel, Claimed, Held, NewTask, Outcome, Recover, Retry},
    task::{Progress, TaskId, TaskState},
};
use errand_testkit::RedisServer;
use redis::AsyncCommands;
use serde_json::json;

use crate::helpers::store_on;

const LEASE: Duration = Duration::from_secs(30);

fn task(id: &str, max_attempts: u32) -> NewTask {
    NewTask {
        id: TaskId::parse(id).unwrap(),
        kind: "noop".into(),
        queue: "q".into(),
        payload: json!({}),
        max_attempts,
        timeout_secs: None,
        result_ttl_secs: 60,
        run_at: None,
        callback: None,
        traceparent: None,
        unique: None,
        flow: Default::default(),
        step: None,
    }
}

/// A fetch token no other fetch of the test uses (the worker sends a ULID).
fn fresh_token() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "fetch{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

async fn fetch(s: &TaskStore, worker: &str, n: usize) -> Vec<Claimed> {
    let token = fresh_token();
    s.fetch("q", n, worker, LEASE, &token, Utc::now())
        .await
        .unwrap()
        .claimed
}

async fn state(s: &TaskStore, id: &str) -> TaskState {
    s.get(&TaskId::parse(id).unwrap())
        .await
        .unwrap()
        .expect("record")
        .state
}

async fn conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Makes `id`'s lease lapse now (as if its worker stopped renewing long ago).
async fn lapse(s: &TaskStore, redis: &RedisServer, id: &str) {
    let mut c = conn(redis).await;
    let _: () = c
        .zadd(s.layout().state_index("q", "running"), id, 0)
        .await
        .unwrap();
}

fn held(c: &Claimed) -> Held {
    Held {
        queue: c.queue.clone(),
        id: c.id.clone(),
        token: c.token.clone(),
    }
}

/// Hole 1a: a damaged record in the middle of a batch used to error the script after the
/// claims before it were written, leaving the ids after it off the ready list and `queued`
/// for good. Now every record is read first: the damaged one fails alone, readable.
#[tokio::test]
async fn a_damaged_record_in_a_batch_fails_alone_and_strands_nothing() {
    let redis = RedisServer::start().await;
    let s = store_on(&redis, "f1");
    for i in 0..10 {
        s.submit(task(&format!("t{i}"), 3), Utc::now())
            .await
            .unwrap();
    }
    let mut c = conn(&redis).await;
    let _: () = c
        .hdel(s.layout().record("q", "t4"), "attempt")
        .await
        .unwrap();
    let claimed = fetch(&s, "w", 10).await;
    assert_eq!(claimed.len(), 9, "every sound task is claimed");
    assert!(claimed.iter().all(|c| c.id != "t4"));
    let damaged = s
        .get(&TaskId::parse("t4").unwrap())
        .await
        .expect("a damaged record is still readable")
        .unwrap();
    assert_eq!(damaged.state, TaskState::Failed);
    assert_eq!(damaged.error.unwrap().kind, "corrupt_record");
    let left: usize = c.llen(s.layout().ready_list("q")).await.unwrap();
    assert_eq!(left, 0);
    for i in (0..10).filter(|&i| i != 4) {
        assert_eq!(state(&s, &format!("t{i}")).await, TaskState::Running);
    }
}

/// Hole 1b: at about 4,000 claims `RPUSH memo unpack(claims)` failed after every claim was
/// written ("too many results to unpack"), so 5,000 queued tasks fetched at once all ran as
/// nobody. A fetch now takes at most MAX_FETCH and writes its memo in slices.
#[tokio::test]
async fn a_huge_fetch_is_capped_and_every_claim_it_makes_is_whole() {
    let redis = RedisServer::start().await;
    let s = store_on(&redis, "f1b");
    let n = 5000;
    let batch: Vec<NewTask> = (0..n).map(|i| task(&format!("t{i}"), 1)).collect();
    s.submit_many(batch, Utc::now()).await.unwrap();
    let token = fresh_token();
    let got = s
        .fetch("q", n, "w", LEASE, &token, Utc::now())
        .await
        .unwrap();
    assert_eq!(got.claimed.len(), errand_core::store::MAX_FETCH);
    // The same fetch again (a lost reply) answers the same claims.
    let again = s
        .fetch("q", n, "w", LEASE, &token, Utc::now())
        .await
        .unwrap();
    assert_eq!(again.claimed.len(), errand_core::store::MAX_FETCH);
    assert_eq!(again.claimed[999].token, got.claimed[999].token);
    let mut c = conn(&redis).await;
    let left: usize = c.llen(s.layout().ready_list("q")).await.unwrap();
    assert_eq!(
        left,
        n - errand_core::store::MAX_FETCH,
        "the rest still queued"
    );
    // Every claim can be finished by its token.
    let first = &got.claimed[0];
    assert!(
        s.finish(first, &Outcome::Succeeded(json!(1)), Utc::now())
            .await
            .unwrap()
    );
}

/// Hole 2: attempt numbers repeat after a manual retry, so a stale attempt 1 could finish
/// over a new attempt 1, and its renewals kept the new holder's lease alive.
#[tokio::test]
async fn a_stale_claim_can_neither_finish_report_nor_renew_over_a_new_run() {
    let redis = RedisServer::start().await;
    let s = store_on(&redis, "f2");
    s.submit(task("t", 1), Utc::now()).await.unwrap();
    let a = fetch(&s, "worker-a", 1).await.remove(0);
    assert_eq!(a.attempt, 1);
    // A is cut off past its lease: upkeep fails the task (its last attempt).
    lapse(&s, &redis, "t").await;
    s.recover("q", Recover::LapsedLeases, 10, Utc::now())
        .await
        .unwrap();
    assert_eq!(state(&s, "t").await, TaskState::Failed);
    // An operator retries; B claims attempt 1 again.
    assert!(matches!(
        s.retry(&TaskId::parse("t").unwrap(), Utc::now())
            .await
            .unwrap(),
        Retry::Queued(_)
    ));
    let b = fetch(&s, "worker-b", 1).await.remove(0);
    assert_eq!(b.attempt, a.attempt, "the numbers repeat");
    assert_ne!(b.token, a.token, "the tokens never do");
    let lease_of = |c: &mut redis::aio::MultiplexedConnection| {
        let key = s.layout().state_index("q", "running");
        let mut c = c.clone();
        async move { c.zscore::<_, _, Option<f64>>(key, "t").await.unwrap() }
    };
    let mut c = conn(&redis).await;
    let b_lease = lease_of(&mut c).await;

    // A comes back: its renewal is refused and says the claim is lost.
    let renewed = s
        .renew_leases(&[held(&a)], Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(renewed.lost, vec![held(&a)]);
    assert_eq!(lease_of(&mut c).await, b_lease, "B's lease untouched by A");
    // Its progress and finish are refused.
    let p = Progress {
        percent: 99,
        message: Some("stale".into()),
    };
    assert!(!s.progress(&a, &p, Utc::now()).await.unwrap());
    assert!(
        !s.finish(&a, &Outcome::Succeeded(json!("from A")), Utc::now())
            .await
            .unwrap()
    );
    let rec = s.get(&TaskId::parse("t").unwrap()).await.unwrap().unwrap();
    assert_eq!(rec.state, TaskState::Running);
    assert_eq!(rec.worker.as_deref(), Some("worker-b"));
    assert_eq!(rec.progress, None);

    // B's own renewal holds, and its finish lands (and answers the same when sent again).
    let renewed = s.renew_leases(&[held(&b)], LEASE).await.unwrap();
    assert!(renewed.lost.is_empty());
    let ok = Outcome::Succeeded(json!("from B"));
    assert!(s.finish(&b, &ok, Utc::now()).await.unwrap());
    assert!(
        s.finish(&b, &ok, Utc::now()).await.unwrap(),
        "a replay answers as the first"
    );
    let rec = s.get(&TaskId::parse("t").unwrap()).await.unwrap().unwrap();
    assert_eq!(rec.state, TaskState::Succeeded);
    assert_eq!(rec.result, Some(json!("from B")));
    // Once ended, the claim is lost to renewals too.
    let renewed = s.renew_leases(&[held(&b)], LEASE).await.unwrap();
    assert_eq!(renewed.lost, vec![held(&b)]);
}

/// Hole 3: a cancel of a claim waiting in a stopping worker's buffer answered 202, the
/// release re-queued it with the flag, and the next fetch ran it to `succeeded`.
#[tokio::test]
async fn a_claim_cancelled_before_it_ran_is_never_run() {
    let redis = RedisServer::start().await;
    let s = store_on(&redis, "f3");
    s.submit(task("t", 3), Utc::now()).await.unwrap();
    let claims = fetch(&s, "w", 1).await;
    let id = TaskId::parse("t").unwrap();
    assert!(matches!(
        s.cancel(&id, Utc::now()).await.unwrap(),
        Cancel::Requested(_)
    ));
    // The stopping worker gives it back: it ends cancelled there.
    assert_eq!(s.release("q", &claims, Utc::now()).await.unwrap(), 1);
    assert_eq!(state(&s, "t").await, TaskState::Cancelled);
    assert!(fetch(&s, "other", 10).await.is_empty(), "nothing to run");

    // And a queued record that carries the flag (however it got there) is ended by fetch.
    s.submit(task("u", 3), Utc::now()).await.unwrap();
    let mut c = conn(&redis).await;
    let _: () = c
        .hset(s.layout().record("q", "u"), "cancel_requested", "1")
        .await
        .unwrap();
    assert!(fetch(&s, "other", 10).await.is_empty());
    assert_eq!(state(&s, "u").await, TaskState::Cancelled);
}

/// A release is fenced by the token too: a stale claim cannot give back a task another
/// worker now runs.
#[tokio::test]
async fn a_stale_release_leaves_the_new_run_alone() {
    let redis = RedisServer::start().await;
    let s = store_on(&redis, "f4");
    s.submit(task("t", 3), Utc::now()).await.unwrap();
    let a = fetch(&s, "a", 1).await;
    lapse(&s, &redis, "t").await;
    s.recover("q", Recover::LapsedLeases, 10, Utc::now())
        .await
        .unwrap();
    let b = fetch(&s, "b", 1).await;
    assert_eq!(b[0].attempt, 2);
    assert_eq!(s.release("q", &a, Utc::now()).await.unwrap(), 0);
    assert_eq!(state(&s, "t").await, TaskState::Running);
    assert!(
        s.finish(&b[0], &Outcome::Succeeded(json!(2)), Utc::now())
            .await
            .unwrap()
    );
}

/// Found by the interleaving checker once fetch read every record before writing: a task
/// with two ready entries (cancelled while queued, then retried) was claimed twice by one
/// fetch. Only its first entry is judged.
#[tokio::test]
async fn two_entries_of_one_task_in_one_fetch_claim_it_once() {
    let redis = RedisServer::start().await;
    let s = store_on(&redis, "f5");
    s.submit(task("t", 3), Utc::now()).await.unwrap();
    let id = TaskId::parse("t").unwrap();
    assert!(matches!(
        s.cancel(&id, Utc::now()).await.unwrap(),
        Cancel::Cancelled(_)
    ));
    assert!(matches!(
        s.retry(&id, Utc::now()).await.unwrap(),
        Retry::Queued(_)
    ));
    let mut c = conn(&redis).await;
    let entries: usize = c.llen(s.layout().ready_list("q")).await.unwrap();
    assert_eq!(entries, 2);
    let got = s
        .fetch("q", 10, "w", LEASE, &fresh_token(), Utc::now())
        .await
        .unwrap();
    assert_eq!(got.claimed.len(), 1, "claimed once");
    assert_eq!(got.dropped, 1);
    assert_eq!(got.claimed[0].attempt, 1);
}
