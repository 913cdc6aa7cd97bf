//! Flow control (`fetch.lua` with `limits.lua`): priorities, the queue's and a kind's rate
//! limits, concurrency keys. Against a real redis-server and a real Redis Cluster (every
//! key of it lives in the queue's slot). docs/flow-control.md states the rules tested here.

use std::time::{Duration, Instant};

use chrono::Utc;
use errand_testkit::{RedisServer, cluster::RedisCluster, wait_for};
use serde_json::json;

use super::bounds_tests::cluster_store;
use super::pause::tests::{store, task};
use super::{Claimed, Fetched, Outcome, QueueLimits, Rate, Recover, TaskStore};

const LEASE: Duration = Duration::from_secs(30);

async fn fetch(s: &TaskStore, q: &str, n: usize) -> Fetched {
    s.fetch(
        q,
        n,
        "w",
        LEASE,
        &crate::task::TaskId::generate().to_string(),
        Utc::now(),
    )
    .await
    .unwrap()
}

async fn submit(s: &TaskStore, q: &str, kind: &str, priority: u8, key: Option<&str>) -> String {
    let mut t = task(q);
    t.kind = kind.into();
    t.flow.priority = priority;
    t.flow.concurrency_key = key.map(Into::into);
    t.max_attempts = 3;
    let id = t.id.to_string();
    s.submit(t, Utc::now()).await.unwrap();
    id
}

async fn succeed(s: &TaskStore, c: &Claimed) {
    assert!(
        s.finish(c, &Outcome::Succeeded(json!(null)), Utc::now())
            .await
            .unwrap()
    );
}

async fn queued(s: &TaskStore, q: &str) -> usize {
    let mut c = s.connection();
    redis::cmd("ZCARD")
        .arg(s.layout().state_index(q, "queued"))
        .query_async(&mut c)
        .await
        .unwrap()
}

fn rate(count: u32, period_ms: u64, burst: u32) -> Rate {
    Rate {
        count,
        period_ms,
        burst,
    }
}

/// Higher bands first, first in first out within a band, and a lower band's share bounded
/// below (4^-Δ of the picks) while a higher one has a backlog.
async fn priorities(s: &TaskStore) {
    let q = "prio";
    let mut by_band = std::collections::HashMap::new();
    for p in [5u8, 9, 1] {
        for _ in 0..4 {
            let id = submit(s, q, "sleep", p, None).await;
            by_band.insert(id, p);
        }
    }
    let mut order = Vec::new();
    for _ in 0..12 {
        let f = fetch(s, q, 1).await;
        assert_eq!(f.claimed.len(), 1);
        order.push(f.claimed[0].id.clone());
    }
    let bands: Vec<u8> = order.iter().map(|id| by_band[id]).collect();
    assert_eq!(bands, [9, 9, 9, 9, 5, 5, 5, 5, 1, 1, 1, 1], "{order:?}");
    // FIFO within a band: ids are time-ordered (UUIDv7).
    for w in order.chunks(4) {
        let mut sorted = w.to_vec();
        sorted.sort();
        assert_eq!(w, &sorted[..]);
    }

    // A backlog of 6s and a single 5: the 5 gets one pick in five (weights 4:1).
    for _ in 0..40 {
        submit(s, q, "sleep", 6, None).await;
    }
    let low = submit(s, q, "sleep", 5, None).await;
    let mut at = None;
    for i in 0..10 {
        let f = fetch(s, q, 1).await;
        if f.claimed[0].id == low {
            at = Some(i);
            break;
        }
    }
    assert!(at.is_some_and(|i| i < 5), "the 5 waited {at:?} picks");
    // One fetch of many shares the same way.
    let low = submit(s, q, "sleep", 5, None).await;
    let f = fetch(s, q, 10).await;
    assert!(f.claimed.iter().any(|c| c.id == low));
}

/// The queue's rate: a fetch claims at most the tokens there are, and one with none claims
/// nothing, takes nothing off the list and says when the next is due.
async fn queue_rate(s: &TaskStore) {
    let q = "rate";
    s.set_limits(
        q,
        &QueueLimits {
            rate: Some(rate(10, 1000, 3)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.limits(q).await.unwrap().rate, Some(rate(10, 1000, 3)));
    for _ in 0..20 {
        submit(s, q, "sleep", 5, None).await;
    }
    let started = Instant::now();
    let first = fetch(s, q, 100).await;
    assert_eq!(first.claimed.len(), 3, "the burst");
    let none = fetch(s, q, 100).await;
    assert!(none.claimed.is_empty());
    let wait = none.retry_in.expect("says when");
    assert!(wait <= Duration::from_millis(100), "{wait:?}");
    // A token every 100 ms: over a second about ten more, never a burst more.
    let mut got = 0;
    while started.elapsed() < Duration::from_millis(1000) {
        let f = fetch(s, q, 100).await;
        got += f.claimed.len();
        tokio::time::sleep(f.retry_in.unwrap_or(Duration::from_millis(5))).await;
    }
    let secs = started.elapsed().as_secs_f64();
    assert!(
        got as f64 <= secs * 10.0 + 1.0 && got >= 7,
        "{got} in {secs:.2}s at 10/s"
    );
    // Nothing used an attempt: the rest still wait in `queued`.
    assert_eq!(queued(s, q).await, 20 - 3 - got);
    // Removed at runtime: the rest go at once.
    s.set_limits(q, &QueueLimits::default()).await.unwrap();
    let rest = fetch(s, q, 100).await;
    assert_eq!(rest.claimed.len(), 20 - 3 - got);
}

/// A kind's rate: its tasks out of tokens move aside (still queued, no attempt used)
/// and the other kinds' tasks behind them go at once.
async fn kind_rate(s: &TaskStore) {
    let q = "krate";
    let mut kinds = std::collections::BTreeMap::new();
    kinds.insert("slow".to_owned(), rate(1, 60_000, 1));
    s.set_limits(
        q,
        &QueueLimits {
            kinds,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for _ in 0..4 {
        submit(s, q, "slow", 5, None).await;
        submit(s, q, "fast", 5, None).await;
    }
    let f = fetch(s, q, 8).await;
    let slow = f.claimed.iter().filter(|c| c.kind == "slow").count();
    assert_eq!((slow, f.claimed.len(), f.held), (1, 5, 3), "{f:?}");
    assert!(f.retry_in.is_some_and(|w| w > Duration::from_secs(50)));
    assert!(f.claimed.iter().all(|c| c.attempt == 1));
    assert_eq!(s.held(q).await.unwrap().throttled, 3);
    // Still throttled: nothing more, nothing lost.
    assert!(fetch(s, q, 8).await.claimed.is_empty());
    // The limit raised: the held ones go at the next fetch.
    let mut kinds = std::collections::BTreeMap::new();
    kinds.insert("slow".to_owned(), rate(100, 1000, 10));
    s.set_limits(
        q,
        &QueueLimits {
            kinds,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // The held ones go within one token of the new rate (10 ms), not after the old debt.
    let started = Instant::now();
    let mut got = 0;
    while got < 3 && started.elapsed() < Duration::from_secs(2) {
        let f = fetch(s, q, 8).await;
        got += f.claimed.len();
        tokio::time::sleep(f.retry_in.unwrap_or_default()).await;
    }
    assert_eq!(got, 3);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(s.held(q).await.unwrap().throttled, 0);
}

/// Concurrency keys: at most `per_key` running per key, across fetches; the rest wait
/// out of the way of other keys, and each end (a finish, a lapsed lease) lets the next go.
async fn concurrency_keys(s: &TaskStore) {
    let q = "keys";
    s.set_limits(
        q,
        &QueueLimits {
            per_key: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut a = Vec::new();
    for _ in 0..5 {
        a.push(submit(s, q, "sleep", 5, Some("cust-a")).await);
    }
    let mut b = Vec::new();
    for _ in 0..3 {
        b.push(submit(s, q, "sleep", 5, Some("cust-b")).await);
    }
    submit(s, q, "sleep", 5, None).await;
    let f = fetch(s, q, 20).await;
    let of = |f: &Fetched, k: &str| {
        f.claimed
            .iter()
            .filter(|c| a.contains(&c.id) == (k == "a"))
            .count()
    };
    assert_eq!(f.claimed.len(), 2 + 2 + 1, "{f:?}");
    assert_eq!(of(&f, "a"), 2);
    assert_eq!(f.held, 4);
    let held = s.held(q).await.unwrap();
    assert_eq!(held.waiting_for_key, 4);
    assert_eq!(held.keys[0], ("cust-a".to_owned(), 3));
    // The next fetch finds nothing: the waiting ones are off the ready list.
    assert!(fetch(s, q, 20).await.claimed.is_empty());
    // A finish of key a lets one of a go, the oldest waiting.
    let done = f.claimed.iter().find(|c| a.contains(&c.id)).unwrap();
    succeed(s, done).await;
    let next = fetch(s, q, 20).await;
    assert_eq!(next.claimed.len(), 1);
    assert_eq!(next.claimed[0].id, a[2]);
    // A lost worker's lease lapses: upkeep re-queues it and frees its key.
    let b_done = f.claimed.iter().find(|c| b.contains(&c.id)).unwrap();
    succeed(s, b_done).await;
    let short = s
        .fetch(
            q,
            20,
            "w",
            Duration::from_millis(1),
            &crate::task::TaskId::generate().to_string(),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(short.claimed.len(), 1, "the third b: {short:?}");
    assert_eq!(short.claimed[0].id, b[2]);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (_, moved) = s
        .recover(q, Recover::LapsedLeases, 100, Utc::now())
        .await
        .unwrap();
    assert_eq!(moved, 1);
    let again = fetch(s, q, 20).await;
    assert_eq!(again.claimed.len(), 1, "the lapsed b runs again: {again:?}");
    // The limit raised at runtime: the two a's left go at once.
    s.set_limits(
        q,
        &QueueLimits {
            per_key: Some(4),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let rest = fetch(s, q, 20).await;
    assert_eq!(rest.claimed.len(), 2, "{rest:?}");
    assert_eq!(s.held(q).await.unwrap().waiting_for_key, 0);
}

async fn all(s: &TaskStore) {
    priorities(s).await;
    queue_rate(s).await;
    kind_rate(s).await;
    concurrency_keys(s).await;
}

#[tokio::test]
async fn priorities_rates_and_concurrency_keys_on_one_redis() {
    let redis = RedisServer::start().await;
    all(&store(&redis).await).await;
}

#[tokio::test]
async fn priorities_rates_and_concurrency_keys_on_a_cluster() {
    let cluster = RedisCluster::start().await;
    let s = cluster_store(&cluster, "fc");
    wait_for("the cluster", Duration::from_secs(10), || async {
        s.queues(Utc::now()).await.ok()
    })
    .await;
    all(&s).await;
}
