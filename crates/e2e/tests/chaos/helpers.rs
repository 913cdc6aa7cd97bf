//! What the chaos scenarios share: a load generator, snapshots of every task's state straight
//! from Redis, and the checks on the records they end with.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use errand_testkit::{Errand, RedisServer, wait_for};
use futures::StreamExt;
use serde_json::Value;

pub(crate) const TERMINAL: [&str; 3] = ["succeeded", "failed", "cancelled"];
pub(crate) const STATES: [&str; 7] = [
    "scheduled",
    "queued",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "cancelled",
];

pub(crate) fn prefix_of(errand: &Errand) -> String {
    errand
        .env
        .iter()
        .find(|(k, _)| k == "ERRAND__REDIS__KEY_PREFIX")
        .map(|(_, v)| v.clone())
        .expect("prefix")
}

/// The pid of the worker process named in a record's `worker` field (`host:pid:ulid`).
pub(crate) fn pid_of(worker: &str) -> Option<u32> {
    worker.rsplit(':').nth(1)?.parse().ok()
}

pub(crate) fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

pub(crate) fn time_of(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Pseudo-random but reproducible spread in `0..m` for item `i`.
pub(crate) fn spread(i: usize, m: u64) -> u64 {
    (i as u64).wrapping_mul(2_654_435_761) % m
}

/// `(state, worker, attempt)` of each task, read straight from Redis in one pipeline (cheap
/// enough to poll thousands of tasks).
pub(crate) async fn snapshot(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    ids: &[String],
) -> Vec<(String, String, u32)> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.cmd("HMGET")
                .arg(format!("{prefix}:{{default}}:task:{id}"))
                .arg("state")
                .arg("worker")
                .arg("attempt");
        }
        let rows: Vec<(Option<String>, Option<String>, Option<u32>)> =
            pipe.query_async(conn).await.expect("snapshot");
        out.extend(rows.into_iter().map(|(s, w, a)| {
            (
                s.unwrap_or_default(),
                w.unwrap_or_default(),
                a.unwrap_or_default(),
            )
        }));
    }
    out
}

/// Waits until every task is terminal; returns how long that took.
pub(crate) async fn wait_all_terminal(
    redis: &RedisServer,
    prefix: &str,
    ids: &[String],
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    let conn = redis.conn().await;
    wait_for(
        &format!("all {} tasks to be terminal", ids.len()),
        timeout,
        || {
            let mut conn = conn.clone();
            async move {
                let snap = snapshot(&mut conn, prefix, ids).await;
                snap.iter()
                    .all(|(s, _, _)| TERMINAL.contains(&s.as_str()))
                    .then_some(())
            }
        },
    )
    .await;
    started.elapsed()
}

/// Every task's record as the API serves it, in the order of `ids`.
pub(crate) async fn records(http: &reqwest::Client, base: &str, ids: &[String]) -> Vec<Value> {
    futures::stream::iter(ids)
        .map(|id| errand_testkit::api::get(http, base, id))
        .buffered(32)
        .collect()
        .await
}

pub(crate) fn count_states(recs: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in recs {
        *m.entry(r["state"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    m
}

/// What a load generator saw.
#[derive(Default, Debug)]
pub(crate) struct Load {
    /// Ids the API accepted (202, or 200 for a resubmit whose first try had gone through).
    pub(crate) accepted: Vec<String>,
    pub(crate) created: usize,
    pub(crate) existing: usize,
    /// Latency of every 503.
    pub(crate) unavailable: Vec<Duration>,
    pub(crate) missing_retry_after: usize,
    /// Any other answer (status and body): must stay empty.
    pub(crate) other: Vec<String>,
    /// Requests that got no HTTP answer within the client timeout.
    pub(crate) transport_errors: usize,
    pub(crate) slowest: Duration,
}

impl Load {
    pub(crate) fn max_503(&self) -> Duration {
        self.unavailable.iter().max().copied().unwrap_or_default()
    }
}

/// A load generator: `clients` concurrent clients, each sending one submit per `pace`,
/// bodies made by `make(i)` (each with its own id) until `max` or until `stop`. A 503 or a
/// transport error is retried with the same id, as an idempotent client would (sooner than
/// Retry-After, to sample the outage densely). `accepted` counts acceptances as they happen,
/// so a test can inject its fault at a known point of the load.
pub(crate) struct Driver {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) accepted: Arc<AtomicUsize>,
    pub(crate) handle: tokio::task::JoinHandle<Load>,
}

impl Driver {
    pub(crate) fn start(
        base: String,
        clients: usize,
        pace: Duration,
        max: usize,
        make: impl Fn(usize) -> Value + Send + Sync + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let load = Arc::new(Mutex::new(Load::default()));
        let next = Arc::new(AtomicUsize::new(0));
        let make = Arc::new(make);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (stop, accepted, load, next, make, http, base) = (
                stop.clone(),
                accepted.clone(),
                load.clone(),
                next.clone(),
                make.clone(),
                http.clone(),
                base.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(pace);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                'bodies: loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= max || stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let body = make(i);
                    loop {
                        tick.tick().await;
                        let t = Instant::now();
                        let res = http
                            .post(format!("{base}/v1/tasks"))
                            .json(&body)
                            .send()
                            .await;
                        let took = t.elapsed();
                        let answer = match res {
                            Ok(r) if r.status().is_success() || r.status() == 503 => {
                                Ok((r.status().as_u16(), r.headers().contains_key("retry-after")))
                            }
                            Ok(r) => Err(Some(format!(
                                "{} {}",
                                r.status(),
                                r.text().await.unwrap_or_default()
                            ))),
                            Err(_) => Err(None),
                        };
                        let mut l = load.lock().unwrap();
                        l.slowest = l.slowest.max(took);
                        match answer {
                            Ok((status @ (200 | 202), _)) => {
                                if status == 202 {
                                    l.created += 1;
                                } else {
                                    l.existing += 1;
                                }
                                l.accepted.push(id_of(&body));
                                accepted.fetch_add(1, Ordering::Relaxed);
                                continue 'bodies;
                            }
                            Ok((503, retry_after)) => {
                                l.unavailable.push(took);
                                if !retry_after {
                                    l.missing_retry_after += 1;
                                }
                            }
                            Ok((other, _)) => {
                                l.other.push(format!("{other}"));
                                continue 'bodies;
                            }
                            Err(Some(text)) => {
                                l.other.push(text);
                                continue 'bodies;
                            }
                            Err(None) => l.transport_errors += 1,
                        }
                        drop(l);
                        if stop.load(Ordering::Relaxed) {
                            // Never answered 2xx: not accepted, so nothing is owed for it.
                            continue 'bodies;
                        }
                    }
                }
            }));
        }
        let handle = tokio::spawn(async move {
            for t in tasks {
                t.await.expect("load client");
            }
            Arc::try_unwrap(load)
                .expect("clients done")
                .into_inner()
                .unwrap()
        });
        Self {
            stop,
            accepted,
            handle,
        }
    }

    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    pub(crate) async fn wait_accepted(&self, n: usize, timeout: Duration) {
        let a = self.accepted.clone();
        wait_for(&format!("{n} tasks accepted"), timeout, || {
            let a = a.clone();
            async move { (a.load(Ordering::Relaxed) >= n).then_some(()) }
        })
        .await;
    }

    /// Stops sending new tasks and returns what was seen.
    pub(crate) async fn finish(self) -> Load {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.expect("load generator")
    }

    /// Waits for all `max` bodies to be sent and accepted.
    pub(crate) async fn join(self) -> Load {
        self.handle.await.expect("load generator")
    }
}

/// Succeeded tasks that ran more than once, and a check that each of them says why.
pub(crate) fn duplicates(recs: &[Value]) -> usize {
    let dups: Vec<&Value> = recs
        .iter()
        .filter(|r| r["attempt"].as_u64() > Some(1))
        .collect();
    for r in &dups {
        assert_eq!(
            r["error"]["kind"], "worker_lost",
            "a task that ran again has the lost attempt on its record: {r}"
        );
    }
    dups.len()
}

/// Queue wait (created → started) in ms: the median and the longest. A job stranded in a
/// stopped worker's fetch buffer shows up here as a wait of seconds.
pub(crate) fn queue_wait_ms(recs: &[Value]) -> (i64, i64) {
    let mut w: Vec<i64> = recs
        .iter()
        .filter_map(|r| {
            Some((time_of(&r["started_at"])? - time_of(&r["created_at"])?).num_milliseconds())
        })
        .collect();
    w.sort_unstable();
    match w.last() {
        Some(max) => (w[w.len() / 2], *max),
        None => (0, 0),
    }
}

pub(crate) fn assert_all_succeeded(recs: &[Value]) {
    let bad: Vec<&Value> = recs
        .iter()
        .filter(|r| r["state"] != "succeeded" || r["result"].is_null())
        .take(3)
        .collect();
    assert!(
        bad.is_empty(),
        "every accepted task succeeded with a result; states {:?}; e.g. {bad:?}",
        count_states(recs)
    );
}

/// Sum of field `field` over the queue's per-minute finish counts of the last two hours (a
/// chaos test is shorter): every finish Redis recorded is counted there once, in the same
/// script call.
pub(crate) async fn finishes(redis: &RedisServer, prefix: &str, queue: &str, field: &str) -> u64 {
    let mut conn = redis.conn().await;
    let (secs, _): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut conn)
        .await
        .expect("TIME");
    let now = secs / 60;
    let mut pipe = redis::pipe();
    for minute in now - 120..=now {
        pipe.cmd("HGET")
            .arg(format!("{prefix}:{{{queue}}}:stats:{minute}"))
            .arg(field);
    }
    let counts: Vec<Option<u64>> = pipe.query_async(&mut conn).await.expect("stats");
    counts.into_iter().flatten().sum()
}
