//! What outlives a task is bounded, and the cluster's two-slot submit and expiry agree
//! (issue 23, holes 6 and 7): one task per id whatever a batch says, no pointer lost to a
//! late expiry step, no claim without a TTL, no queue kept listed once it holds nothing, no
//! webhook delivery, `attempt_errors` line or tombstone without a bound. Against a real
//! redis-server, and a real Redis Cluster where the race is a cluster's.

use std::time::Duration;

use chrono::Utc;
use errand_testkit::{RedisServer, cluster::RedisCluster, wait_for};

use super::pause::tests::{store, task};
use super::{Cancel, Layout, Retention, Submitted, TaskStore};
use crate::settings::RedisSettings;
use crate::task::{Callback, TaskId, TaskState, WebhookEvent};

pub(super) fn cluster_store(cluster: &RedisCluster, prefix: &str) -> TaskStore {
    let conn = super::connect(&RedisSettings {
        url: cluster.url(),
        key_prefix: prefix.into(),
        response_timeout_ms: 5000,
        connect_timeout_ms: 2000,
        tls_ca_file: None,
    })
    .unwrap();
    TaskStore::new(conn, Layout::new(prefix))
}

async fn pttl(s: &TaskStore, key: &str) -> i64 {
    let mut c = s.connection();
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap()
}

async fn used_memory(redis: &RedisServer) -> i64 {
    let mut c = redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Submits a task with a 1 s result TTL to `queue`, cancels it, and waits until Redis has
/// dropped its record: what upkeep then finds expired.
async fn expired_task(s: &TaskStore, queue: &str) -> TaskId {
    let mut t = task(queue);
    t.result_ttl_secs = 1;
    let id = t.id.clone();
    s.submit(t, Utc::now()).await.unwrap();
    cancelled(s, &id).await;
    record_gone(s, queue, &id).await;
    id
}

async fn cancelled(s: &TaskStore, id: &TaskId) {
    let c = s.cancel(id, Utc::now()).await.unwrap();
    assert!(matches!(c, Cancel::Cancelled(_)), "{c:?}");
}

async fn record_gone(s: &TaskStore, queue: &str, id: &TaskId) {
    let key = s.layout().record(queue, id.as_str());
    wait_for("the record to expire", Duration::from_secs(10), || {
        let mut c = s.connection();
        let key = key.clone();
        async move {
            let n: i64 = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut c)
                .await
                .ok()?;
            (n == 0).then_some(())
        }
    })
    .await;
}

/// Runs upkeep's expiry on `queue` until its listing index is empty (every record expired).
async fn drained(s: &TaskStore, queue: &str) {
    let idx = s.layout().queue_index(queue);
    wait_for("every record to expire", Duration::from_secs(30), || {
        let mut c = s.connection();
        let idx = idx.clone();
        async move {
            while s.expire_indexes(queue, 500).await.ok()? > 0 {}
            let n: i64 = redis::cmd("ZCARD")
                .arg(&idx)
                .query_async(&mut c)
                .await
                .ok()?;
            (n == 0).then_some(())
        }
    })
    .await;
}

/// Hole 6: a cluster submit claimed every id of a batch before creating any, so the second
/// occurrence of an id (in another queue) found the first's claim without a record, waited
/// out the grace and took the id over: two tasks, every time.
#[tokio::test]
async fn a_cluster_batch_giving_one_id_two_queues_creates_it_once() {
    let cluster = RedisCluster::start().await;
    let s = cluster_store(&cluster, "b6");
    let first = task("q1");
    let mut second = task("q2");
    second.id = first.id.clone();
    let out = s
        .submit_many(vec![first.clone(), second], Utc::now())
        .await
        .unwrap();
    assert!(
        matches!(&out[0], Submitted::Created(r) if r.queue == "q1"),
        "{out:?}"
    );
    assert!(
        matches!(&out[1], Submitted::Existing(r) if r.queue == "q1"),
        "the second is answered with the first: {out:?}"
    );
    assert!(
        s.get_in("q2", first.id.as_str()).await.unwrap().is_none(),
        "no second task under the id"
    );
    assert_eq!(s.get(&first.id).await.unwrap().unwrap().queue, "q1");
}

/// Hole 6: on a cluster expiry is two steps (the queue's slot, then the pointer's); a task
/// submitted again under the id between them had its fresh pointer overwritten by the
/// tombstone, so reads said "expired" and another queue could create a second task.
#[tokio::test]
async fn a_task_resubmitted_between_the_cluster_expiry_steps_keeps_its_pointer() {
    let cluster = RedisCluster::start().await;
    let s = cluster_store(&cluster, "b6r");
    let id = expired_task(&s, "q").await;
    let e = s.expire_slot("q", 500).await.unwrap();
    assert_eq!(e.gone, vec![id.to_string()]);
    let mut again = task("q");
    again.id = id.clone();
    let made = s.submit(again.clone(), Utc::now()).await.unwrap();
    assert!(matches!(made, Submitted::Created(_)), "{made:?}");
    s.tombstone_gone("q", &e).await.unwrap();
    let r = s
        .get(&id)
        .await
        .unwrap()
        .expect("the new task is found by its id");
    assert_eq!(r.state, TaskState::Queued);
    let mut elsewhere = task("other");
    elsewhere.id = id.clone();
    let out = s.submit(elsewhere, Utc::now()).await.unwrap();
    assert!(
        matches!(&out, Submitted::Existing(r) if r.queue == "q"),
        "a submit to another queue finds the live task: {out:?}"
    );

    // A plain expiry on the cluster still reads as expired, an unknown id as unknown.
    let gone = expired_task(&s, "q3").await;
    drained(&s, "q3").await;
    assert!(s.get(&gone).await.unwrap().is_none());
    assert!(s.expired_at(&gone).await.unwrap().is_some(), "expired");
    assert!(s.expired_at(&TaskId::generate()).await.unwrap().is_none());
    // And the id is free again.
    let mut reuse = task("other");
    reuse.id = gone.clone();
    let out = s.submit(reuse, Utc::now()).await.unwrap();
    assert!(
        matches!(&out, Submitted::Created(r) if r.queue == "other"),
        "{out:?}"
    );
}

/// Hole 7: a cluster submit that died after its claim (or whose create failed) left the
/// id's pointer naming the queue forever, with no record behind it.
#[tokio::test]
async fn a_cluster_claim_whose_create_never_comes_lapses() {
    let cluster = RedisCluster::start().await;
    let s = cluster_store(&cluster, "b7c");
    let id = TaskId::generate();
    let _ = s.claim(id.as_str(), "q", "").await.unwrap();
    let left = pttl(&s, &s.layout().pointer(id.as_str())).await;
    assert!(
        left > 0 && left <= 3_600_000,
        "a claim lapses within the hour, PTTL {left}"
    );
    let t = task("q");
    s.submit(t.clone(), Utc::now()).await.unwrap();
    assert_eq!(
        pttl(&s, &s.layout().pointer(t.id.as_str())).await,
        -1,
        "a created task's pointer lives as long as the task"
    );
}

/// Hole 7: `prefix:queues` only grew, and every worker's upkeep made its calls for every
/// queue ever submitted to, every tick. A queue that holds nothing leaves the set; one with
/// a live task, or paused, stays; a submit brings it back.
#[tokio::test]
async fn a_queue_that_holds_nothing_leaves_the_queue_set() {
    let redis = RedisServer::start().await;
    let s = store(&redis).await;
    expired_task(&s, "brief").await;
    s.submit(task("kept"), Utc::now()).await.unwrap();
    s.pause_queue("held").await.unwrap();
    drained(&s, "brief").await;
    let names = s.queue_names().await.unwrap();
    assert!(!names.contains(&"brief".to_owned()), "{names:?}");
    assert!(names.contains(&"kept".to_owned()), "{names:?}");
    assert!(names.contains(&"held".to_owned()), "{names:?}");
    for q in ["kept", "held"] {
        s.expire_indexes(q, 500).await.unwrap();
    }
    let names = s.queue_names().await.unwrap();
    assert!(names.contains(&"kept".to_owned()) && names.contains(&"held".to_owned()));
    s.submit(task("brief"), Utc::now()).await.unwrap();
    assert!(s.queue_names().await.unwrap().contains(&"brief".to_owned()));
}

/// Hole 7 on a cluster: the same prune, in two slots.
#[tokio::test]
async fn a_cluster_queue_that_holds_nothing_leaves_the_queue_set() {
    let cluster = RedisCluster::start().await;
    let s = cluster_store(&cluster, "b7q");
    expired_task(&s, "brief").await;
    s.submit(task("kept"), Utc::now()).await.unwrap();
    drained(&s, "brief").await;
    let names = s.queue_names().await.unwrap();
    assert!(!names.contains(&"brief".to_owned()), "{names:?}");
    assert!(names.contains(&"kept".to_owned()), "{names:?}");

    // A submit landing between the slot's verdict (empty) and the set's prune: the prune's
    // last step sees the task and puts the queue back.
    let e = s.expire_slot("brief", 500).await.unwrap();
    assert!(e.empty);
    s.submit(task("brief"), Utc::now()).await.unwrap();
    s.prune("brief").await.unwrap();
    let names = s.queue_names().await.unwrap();
    assert!(names.contains(&"brief".to_owned()), "{names:?}");
}

/// Hole 7: a delivery hash was written with no TTL, so a queue whose workers send no
/// webhooks (no secrets) kept every delivery forever.
#[tokio::test]
async fn a_webhook_delivery_expires_even_when_no_worker_sends_it() {
    let redis = RedisServer::start().await;
    let s = store(&redis).await;
    let mut t = task("wh");
    t.callback = Some(Callback {
        url: "https://example.com/hook".into(),
        events: vec![WebhookEvent::Cancelled],
    });
    let id = t.id.clone();
    s.submit(t, Utc::now()).await.unwrap();
    cancelled(&s, &id).await;
    let key = s.layout().webhook_delivery("wh", &format!("{id}.1"));
    let left = pttl(&s, &key).await;
    assert!(
        left > 0 && left <= (86_400 + 120) * 1000,
        "kept as long as it is retried (a day by default), PTTL {left}"
    );
}

/// Once a delivery's time is over (kept `Retention::webhooks`), upkeep drops its outbox
/// entry too, and the queue, holding nothing more, leaves the queue set.
#[tokio::test]
async fn an_expired_delivery_leaves_the_outbox_and_the_queue_is_pruned() {
    let redis = RedisServer::start().await;
    let s = store(&redis).await.with_retention(Retention {
        tombstones: Duration::from_secs(60),
        webhooks: Duration::from_secs(1),
    });
    let mut t = task("wh");
    t.result_ttl_secs = 1;
    t.callback = Some(Callback {
        url: "https://example.com/hook".into(),
        events: vec![WebhookEvent::Cancelled],
    });
    let id = t.id.clone();
    s.submit(t, Utc::now()).await.unwrap();
    cancelled(&s, &id).await;
    let due = s.layout().webhook_due("wh");
    wait_for(
        "the outbox and the queue set to empty",
        Duration::from_secs(20),
        || {
            let mut c = s.connection();
            let due = due.clone();
            let s = &s;
            async move {
                s.expire_indexes("wh", 500).await.ok()?;
                let left: i64 = redis::cmd("ZCARD")
                    .arg(&due)
                    .query_async(&mut c)
                    .await
                    .ok()?;
                let names = s.queue_names().await.ok()?;
                (left == 0 && !names.contains(&"wh".to_owned())).then_some(())
            }
        },
    )
    .await;
}

/// Hole 7: every failed attempt appended a line to the record's `attempt_errors`, and a
/// manual retry starts the attempts over, so the field grew with every retry.
#[tokio::test]
async fn attempt_errors_keep_the_last_hundred_lines() {
    let redis = RedisServer::start().await;
    let s = store(&redis).await;
    let probe = redis::Script::new(concat!(
        include_str!("lua/prelude.lua"),
        "\nfor i = 1, 150 do count_finish(KEYS[1], 'q', 'failed', 1000 + i, i, '{\"kind\":\"x\"}', 1000) end\
         \nflush_stats()\nreturn redis.call('HGET', KEYS[1], 'attempt_errors')"
    ));
    let inv = s.invoke(&probe, &s.layout().record("q", "T1"));
    let lines: String = s.run(&inv).await.unwrap();
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 100);
    assert!(lines[0].starts_with("51\t"), "{}", lines[0]);
    assert!(lines[99].starts_with("150\t"), "{}", lines[99]);
}

/// Hole 7: an expired id's tombstone was a string key with a TTL of a day, ~200 bytes, so
/// memory held a day of tombstones whatever the result TTL. Now it is a field of a shared
/// hash; an expired id still reads as expired, an unknown one as unknown.
#[tokio::test]
async fn an_expired_id_costs_under_100_bytes_and_still_reads_as_expired() {
    let n: usize = std::env::var("ERRAND_TOMBSTONES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let redis = RedisServer::start().await;
    let s = store(&redis).await;
    // Warm up (scripts loaded, the queue's first keys made), then measure from empty.
    expired_task(&s, "tomb").await;
    drained(&s, "tomb").await;
    let before = used_memory(&redis).await;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n.div_ceil(1000) {
        let batch: Vec<_> = (0..1000.min(n - ids.len()))
            .map(|_| {
                let mut t = task("tomb");
                t.result_ttl_secs = 1;
                t
            })
            .collect();
        ids.extend(batch.iter().map(|t| t.id.clone()));
        s.submit_many(batch, Utc::now()).await.unwrap();
    }
    for chunk in ids.chunks(500) {
        futures::future::join_all(chunk.iter().map(|id| cancelled(&s, id))).await;
    }
    drained(&s, "tomb").await;
    let after = used_memory(&redis).await;
    let per = (after - before) as f64 / n as f64;
    eprintln!(
        "{n} tombstones: {} bytes, {per:.1} bytes each",
        after - before
    );
    assert!(per < 100.0, "{per:.1} bytes per tombstone");
    assert!(s.expired_at(&ids[0]).await.unwrap().is_some());
    assert!(s.expired_at(&ids[n - 1]).await.unwrap().is_some());
    assert!(s.expired_at(&TaskId::generate()).await.unwrap().is_none());
}

/// `tasks.tombstone_secs` bounds how long an expired id reads as expired, and each bucket
/// outlives its last tombstone by at most its width; 0 keeps none.
#[tokio::test]
async fn a_tombstone_lasts_its_setting_and_none_are_kept_at_zero() {
    let redis = RedisServer::start().await;
    let s = store(&redis).await.with_retention(Retention {
        tombstones: Duration::from_secs(2),
        ..Retention::default()
    });
    let id = expired_task(&s, "short").await;
    drained(&s, "short").await;
    assert!(s.expired_at(&id).await.unwrap().is_some());
    let mut c = redis.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("p:{~tomb:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let left = pttl(&s, &keys[0]).await;
    assert!(
        left > 0 && left <= 62_000,
        "a minute's bucket plus 2 s, PTTL {left}"
    );
    wait_for(
        "the tombstone to lapse",
        Duration::from_secs(10),
        || async { s.expired_at(&id).await.ok()?.is_none().then_some(()) },
    )
    .await;

    let none = store(&redis).await.with_retention(Retention {
        tombstones: Duration::ZERO,
        ..Retention::default()
    });
    let _: () = redis::cmd("DEL")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    let id = expired_task(&none, "none").await;
    drained(&none, "none").await;
    assert!(none.expired_at(&id).await.unwrap().is_none());
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("p:{~tomb:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}
