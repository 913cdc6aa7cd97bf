//! Fault injection against the real binaries and a real Redis: errand's promises under
//! stress. A task accepted with 2xx runs at least once and its outcome is recorded; bad
//! input never gets a 5xx; processes recover by themselves.
//!
//! The heavy scenarios are `#[ignore]`d from the default run; `just chaos` runs the whole
//! file one test at a time (timings are figures here, and 2 cores are easily saturated).
//! Every test prints its figures on one `chaos[...]` line; docs/reliability.md quotes them.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use errand_testkit::{Errand, Proc, RedisServer, api::submit, api::wait_state, wait_for};
use futures::StreamExt;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const TERMINAL: [&str; 3] = ["succeeded", "failed", "cancelled"];
const STATES: [&str; 7] = [
    "scheduled",
    "queued",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "cancelled",
];

fn prefix_of(errand: &Errand) -> String {
    errand
        .env
        .iter()
        .find(|(k, _)| k == "ERRAND__REDIS__KEY_PREFIX")
        .map(|(_, v)| v.clone())
        .expect("prefix")
}

/// The pid of the worker process named in a record's `worker` field (`host:pid:ulid`).
fn pid_of(worker: &str) -> Option<u32> {
    worker.rsplit(':').nth(1)?.parse().ok()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn time_of(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Pseudo-random but reproducible spread in `0..m` for item `i`.
fn spread(i: usize, m: u64) -> u64 {
    (i as u64).wrapping_mul(2_654_435_761) % m
}

/// `(state, worker, attempt)` of each task, read straight from Redis in one pipeline (cheap
/// enough to poll thousands of tasks).
async fn snapshot(
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
async fn wait_all_terminal(
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
async fn records(http: &reqwest::Client, base: &str, ids: &[String]) -> Vec<Value> {
    futures::stream::iter(ids)
        .map(|id| errand_testkit::api::get(http, base, id))
        .buffered(32)
        .collect()
        .await
}

fn count_states(recs: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in recs {
        *m.entry(r["state"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    m
}

/// What a load generator saw.
#[derive(Default, Debug)]
struct Load {
    /// Ids the API accepted (202, or 200 for a resubmit whose first try had gone through).
    accepted: Vec<String>,
    created: usize,
    existing: usize,
    /// Latency of every 503.
    unavailable: Vec<Duration>,
    missing_retry_after: usize,
    /// Any other answer (status and body): must stay empty.
    other: Vec<String>,
    /// Requests that got no HTTP answer within the client timeout.
    transport_errors: usize,
    slowest: Duration,
}

impl Load {
    fn max_503(&self) -> Duration {
        self.unavailable.iter().max().copied().unwrap_or_default()
    }
}

/// A load generator: `clients` concurrent clients, each sending one submit per `pace`,
/// bodies made by `make(i)` (each with its own id) until `max` or until `stop`. A 503 or a
/// transport error is retried with the same id, as an idempotent client would (sooner than
/// Retry-After, to sample the outage densely). `accepted` counts acceptances as they happen,
/// so a test can inject its fault at a known point of the load.
struct Driver {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    handle: tokio::task::JoinHandle<Load>,
}

impl Driver {
    fn start(
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

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    async fn wait_accepted(&self, n: usize, timeout: Duration) {
        let a = self.accepted.clone();
        wait_for(&format!("{n} tasks accepted"), timeout, || {
            let a = a.clone();
            async move { (a.load(Ordering::Relaxed) >= n).then_some(()) }
        })
        .await
    }

    /// Stops sending new tasks and returns what was seen.
    async fn finish(self) -> Load {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.expect("load generator")
    }

    /// Waits for all `max` bodies to be sent and accepted.
    async fn join(self) -> Load {
        self.handle.await.expect("load generator")
    }
}

/// Succeeded tasks that ran more than once, and a check that each of them says why.
fn duplicates(recs: &[Value]) -> usize {
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
fn queue_wait_ms(recs: &[Value]) -> (i64, i64) {
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

fn assert_all_succeeded(recs: &[Value]) {
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

// ---------------------------------------------------------------------------------------
// 1. A worker SIGKILLed while running many tasks.

/// 200 one-second tasks on two workers (16 slots each); one worker is SIGKILLed while 16
/// of its tasks run. Every task still succeeds; exactly the tasks the dead worker was running
/// run again as attempt 2 on the survivor, with `worker_lost` on their record. (A fetch takes
/// no more than the free slots, so a worker holds no claimed task it has not started.)
#[tokio::test]
#[ignore = "chaos: heavy; `just chaos` runs it"]
async fn sigkilled_worker_loses_no_task_and_its_tasks_rerun_as_attempt_2() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let prefix = prefix_of(&errand);
    let _api = errand.spawn_api().await;
    let mut victim = errand.spawn_worker(&["--queues", "default=16"]);
    let _survivor = errand.spawn_worker(&["--queues", "default=16"]);
    let victim_pid = victim.child.id().unwrap();
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let n = 200;

    let started = Instant::now();
    let load = Driver::start(
        base.clone(),
        16,
        Duration::from_millis(1),
        n,
        |i| json!({"kind": "sleep", "payload": {"duration_secs": 1}, "id": format!("kill-{i}")}),
    )
    .join()
    .await;
    assert_eq!(load.accepted.len(), n, "{load:?}");
    let ids = load.accepted.clone();

    let conn = redis.conn().await;
    wait_for(
        "the victim to be running 16 tasks",
        Duration::from_secs(20),
        || {
            let mut conn = conn.clone();
            let (prefix, ids) = (&prefix, &ids);
            async move {
                let snap = snapshot(&mut conn, prefix, ids).await;
                let on_victim = snap
                    .iter()
                    .filter(|(s, w, _)| s == "running" && pid_of(w) == Some(victim_pid))
                    .count();
                (on_victim >= 16).then_some(())
            }
        },
    )
    .await;
    victim.signal(Signal::SIGKILL);
    let killed_at = Utc::now();
    assert_eq!(victim.wait_exit(Duration::from_secs(5)).await, None);
    // Dead, so this is exactly what it held: tasks still `running` under its name.
    let mut conn = redis.conn().await;
    let orphaned: HashSet<String> = snapshot(&mut conn, &prefix, &ids)
        .await
        .into_iter()
        .zip(&ids)
        .filter(|((s, w, _), _)| s == "running" && pid_of(w) == Some(victim_pid))
        .map(|(_, id)| id.clone())
        .collect();
    assert!(!orphaned.is_empty());
    // Re-queued once their leases lapse (3 s after the last renewal) by the survivor's upkeep.
    let orphan_ids: Vec<String> = orphaned.iter().cloned().collect();
    wait_for(
        "the dead worker's tasks to be re-queued",
        Duration::from_secs(15),
        || {
            let mut conn = conn.clone();
            let (prefix, orphan_ids) = (&prefix, &orphan_ids);
            async move {
                let snap = snapshot(&mut conn, prefix, orphan_ids).await;
                snap.iter()
                    .all(|(s, w, _)| s != "running" || pid_of(w) != Some(victim_pid))
                    .then_some(())
            }
        },
    )
    .await;
    let requeued = (Utc::now() - killed_at).to_std().unwrap();

    wait_all_terminal(&redis, &prefix, &ids, Duration::from_secs(60)).await;
    let total = started.elapsed();
    let recs = records(&http, &base, &ids).await;
    assert_all_succeeded(&recs);
    let rerun: HashSet<String> = recs
        .iter()
        .filter(|r| r["attempt"] != 1)
        .map(id_of)
        .collect();
    assert_eq!(
        rerun, orphaned,
        "exactly the killed worker's running tasks ran again"
    );
    let mut recovered_at = killed_at;
    for r in recs.iter().filter(|r| rerun.contains(&id_of(r))) {
        assert_eq!(r["attempt"], 2, "{r}");
        assert_eq!(r["error"]["kind"], "worker_lost", "{r}");
        assert_ne!(pid_of(r["worker"].as_str().unwrap()), Some(victim_pid));
        recovered_at = recovered_at.max(time_of(&r["finished_at"]).unwrap());
    }
    let recovery = (recovered_at - killed_at).to_std().unwrap();
    eprintln!(
        "chaos[sigkill] accepted={} terminal={} states={:?} killed_running={} rerun_attempt2={} \
         requeued_after_ms={} recovery_ms={} total_ms={}",
        ids.len(),
        recs.len(),
        count_states(&recs),
        orphaned.len(),
        rerun.len(),
        requeued.as_millis(),
        recovery.as_millis(),
        total.as_millis()
    );
    // Lease 3 s after the last renewal (every 750 ms) + an upkeep tick (250 ms), with room
    // for a loaded machine. The re-runs then queue behind the backlog (re-queued jobs join
    // the tail), so the last one ends when the survivor has worked through it.
    assert!(
        requeued < Duration::from_secs(6),
        "re-queued after {requeued:?}"
    );
    assert!(recovery < Duration::from_secs(30), "recovery {recovery:?}");
}

// ---------------------------------------------------------------------------------------
// 2. Rolling restart.

/// 2,000 short tasks flow in continuously while each of 3 workers is SIGTERMed (it drains
/// and exits 0) and replaced, one after the other. Nothing is lost or failed, and since
/// SIGTERM is graceful nothing runs twice.
#[tokio::test]
#[ignore = "chaos: heavy; `just chaos` runs it"]
async fn rolling_restart_under_load_loses_and_repeats_nothing() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let prefix = prefix_of(&errand);
    let _api = errand.spawn_api().await;
    let mut workers: Vec<Proc> = (0..3)
        .map(|_| errand.spawn_worker(&["--queues", "default=16"]))
        .collect();
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let n = 2000;

    let started = Instant::now();
    // Up to ~500 tasks/s of 0.05–0.2 s each: enough to keep the 48 slots busy.
    let load = Driver::start(base.clone(), 8, Duration::from_millis(15), n, |i| {
        let secs = 0.05 + spread(i, 16) as f64 * 0.01;
        json!({"kind": "sleep", "payload": {"duration_secs": secs}, "id": format!("roll-{i}")})
    });
    let mut conn = redis.conn().await;
    let all: Vec<String> = (0..n).map(|i| format!("roll-{i}")).collect();
    let mut drains = Vec::new();
    let mut running_at_term = Vec::new();
    for (k, slot) in workers.iter_mut().enumerate() {
        load.wait_accepted((k + 1) * n / 5, Duration::from_secs(60))
            .await;
        // Stopped while busy, so the drain has something to drain.
        let pid = slot.child.id().unwrap();
        let busy = wait_for(
            "the worker to be running tasks",
            Duration::from_secs(20),
            || {
                let mut conn = conn.clone();
                let (prefix, all) = (&prefix, &all);
                async move {
                    let snap = snapshot(&mut conn, prefix, all).await;
                    let running = snap
                        .iter()
                        .filter(|(s, w, _)| s == "running" && pid_of(w) == Some(pid))
                        .count();
                    (running > 0).then_some(running)
                }
            },
        )
        .await;
        slot.signal(Signal::SIGTERM);
        running_at_term.push(busy);
        let t = Instant::now();
        assert_eq!(
            slot.wait_exit(Duration::from_secs(40)).await,
            Some(0),
            "a SIGTERMed worker drains and exits 0"
        );
        drains.push(t.elapsed().as_millis());
        *slot = errand.spawn_worker(&["--queues", "default=16"]);
        let pid = slot.child.id().unwrap();
        // The replacement is at work before the next one goes down.
        wait_for(
            "the replacement to run a task",
            Duration::from_secs(20),
            || {
                let mut conn = conn.clone();
                let (prefix, all) = (&prefix, &all);
                async move {
                    let snap = snapshot(&mut conn, prefix, all).await;
                    snap.iter()
                        .any(|(_, w, _)| pid_of(w) == Some(pid))
                        .then_some(())
                }
            },
        )
        .await;
    }
    let load = load.join().await;
    assert!(load.other.is_empty(), "{:?}", load.other);
    assert_eq!(load.accepted.len(), n);
    let ids = load.accepted.clone();
    wait_all_terminal(&redis, &prefix, &ids, Duration::from_secs(120)).await;
    let total = started.elapsed();
    let recs = records(&http, &base, &ids).await;
    let states = count_states(&recs);
    let dups = duplicates(&recs);
    let per_worker: usize = snapshot(&mut conn, &prefix, &ids)
        .await
        .iter()
        .map(|(_, w, _)| pid_of(w))
        .collect::<HashSet<_>>()
        .len();
    let (wait_p50, wait_max) = queue_wait_ms(&recs);
    eprintln!(
        "chaos[rolling] accepted={} terminal={} states={states:?} duplicates={dups} \
         running_at_sigterm={running_at_term:?} drain_ms={drains:?} worker_processes_seen={per_worker} queue_wait_ms(p50={wait_p50} \
         max={wait_max}) total_ms={}",
        ids.len(),
        recs.len(),
        total.as_millis()
    );
    assert_all_succeeded(&recs);
    assert_eq!(dups, 0, "SIGTERM is graceful: no task runs twice");
}

// ---------------------------------------------------------------------------------------
// 3. Redis restarted mid-load (AOF on).

/// Redis (AOF, fsync always) is SIGKILLed for 2 s mid-load and started again. While it is
/// down the api answers 503 + Retry-After, fast; afterwards api and workers reconnect on
/// their own and every task the api accepted (2xx) succeeds.
#[tokio::test]
#[ignore = "chaos: heavy; `just chaos` runs it"]
async fn redis_restart_mid_load_loses_no_accepted_task() {
    let mut redis = RedisServer::start_with(true).await;
    let errand = Errand::new(&redis);
    let prefix = prefix_of(&errand);
    let _api = errand.spawn_api().await;
    let mut workers: Vec<Proc> = (0..2)
        .map(|_| errand.spawn_worker(&["--queues", "default=16"]))
        .collect();
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let load = Driver::start(
        base.clone(),
        4,
        Duration::from_millis(20),
        100_000,
        |i| json!({"kind": "sleep", "payload": {"duration_secs": 0.2}, "id": format!("aof-{i}")}),
    );
    load.wait_accepted(150, Duration::from_secs(30)).await;
    redis.kill().await;
    let down = Instant::now();
    let before = load.accepted();
    // The outage itself: a fixed span of fault, not a wait for anything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart().await;
    let downtime = down.elapsed();
    let up = Instant::now();
    load.wait_accepted(load.accepted() + 1, Duration::from_secs(20))
        .await;
    let first_accept_after = up.elapsed();
    load.wait_accepted(load.accepted() + 150, Duration::from_secs(30))
        .await;
    let load = load.finish().await;
    assert!(load.other.is_empty(), "only 2xx or 503: {:?}", load.other);
    assert_eq!(load.missing_retry_after, 0, "every 503 has Retry-After");
    assert_eq!(load.transport_errors, 0, "the api never hung or dropped");
    assert!(
        !load.unavailable.is_empty(),
        "the outage was seen as 503s ({before} accepted before it)"
    );
    // redis.response_timeout_ms is 2000 by default; a 503 never takes longer than that.
    assert!(
        load.max_503() < Duration::from_millis(2500),
        "slowest 503 {:?}",
        load.max_503()
    );

    let ids = load.accepted.clone();
    let settle = wait_all_terminal(&redis, &prefix, &ids, Duration::from_secs(60)).await;
    let recs = records(&http, &base, &ids).await;
    let dups = duplicates(&recs);
    for w in &mut workers {
        assert!(w.child.try_wait().unwrap().is_none(), "worker alive");
    }
    assert_eq!(
        reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let mut lat: Vec<u128> = load.unavailable.iter().map(|d| d.as_millis()).collect();
    lat.sort_unstable();
    eprintln!(
        "chaos[redis-restart] accepted={} (202={} 200-on-resubmit={}) terminal={} states={:?} \
         duplicates={dups} answers_503={} latency_503_ms(p50={} max={}) downtime_ms={} \
         first_202_after_restart_ms={} settle_ms={}",
        ids.len(),
        load.created,
        load.existing,
        recs.len(),
        count_states(&recs),
        lat.len(),
        lat[lat.len() / 2],
        lat[lat.len() - 1],
        downtime.as_millis(),
        first_accept_after.as_millis(),
        settle.as_millis()
    );
    assert_all_succeeded(&recs);
}

// ---------------------------------------------------------------------------------------
// 4. Redis slow.

/// Redis stalls three times for 1.5 s (`DEBUG SLEEP`), three times errand's response timeout
/// (set to 500 ms here), while tasks flow. The workers ride it out: still alive, and every
/// accepted task succeeds.
#[tokio::test]
#[ignore = "chaos: heavy; `just chaos` runs it"]
async fn slow_redis_does_not_kill_workers() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis).with("ERRAND__REDIS__RESPONSE_TIMEOUT_MS", "500");
    let prefix = prefix_of(&errand);
    let _api = errand.spawn_api().await;
    let mut workers: Vec<Proc> = (0..2)
        .map(|_| errand.spawn_worker(&["--queues", "default=16"]))
        .collect();
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let load = Driver::start(
        base.clone(),
        4,
        Duration::from_millis(20),
        100_000,
        |i| json!({"kind": "sleep", "payload": {"duration_secs": 0.3}, "id": format!("slow-{i}")}),
    );
    let mut stalls = Vec::new();
    // A connection of its own that waits as long as DEBUG SLEEP takes.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_response_timeout(None),
        )
        .await
        .unwrap();
    for _ in 0..3 {
        load.wait_accepted(load.accepted() + 100, Duration::from_secs(30))
            .await;
        let t = Instant::now();
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(1.5)
            .query_async(&mut conn)
            .await
            .expect("DEBUG SLEEP");
        // Back to accepting within a few seconds after each stall.
        let at = load.accepted();
        load.wait_accepted(at + 1, Duration::from_secs(10)).await;
        stalls.push(t.elapsed().as_millis());
    }
    let last_stall_over = Utc::now();
    load.wait_accepted(load.accepted() + 100, Duration::from_secs(30))
        .await;
    let load = load.finish().await;
    assert!(load.other.is_empty(), "only 2xx or 503: {:?}", load.other);
    assert_eq!(load.transport_errors, 0);

    let ids = load.accepted.clone();
    let settle = wait_all_terminal(&redis, &prefix, &ids, Duration::from_secs(60)).await;
    let recs = records(&http, &base, &ids).await;
    let dups = duplicates(&recs);
    for w in &mut workers {
        assert!(
            w.child.try_wait().unwrap().is_none(),
            "worker still alive after the stalls"
        );
    }
    // And each of them is working again, not just alive: both ran tasks after the last stall.
    let working: HashSet<u32> = recs
        .iter()
        .filter(|r| time_of(&r["started_at"]).is_some_and(|t| t > last_stall_over))
        .filter_map(|r| pid_of(r["worker"].as_str()?))
        .collect();
    for w in &workers {
        assert!(
            working.contains(&w.child.id().unwrap()),
            "worker {:?} ran tasks after the stalls ({working:?})",
            w.child.id()
        );
    }
    eprintln!(
        "chaos[slow-redis] accepted={} (200-on-resubmit={}) terminal={} states={:?} \
         duplicates={dups} answers_503={} max_503_ms={} stall_to_next_accept_ms={stalls:?} \
         settle_ms={}",
        ids.len(),
        load.existing,
        recs.len(),
        count_states(&recs),
        load.unavailable.len(),
        load.max_503().as_millis(),
        settle.as_millis()
    );
    assert_all_succeeded(&recs);
    // The stalled workers are still working: a new task runs.
    let r = submit(
        &http,
        &base,
        json!({"kind": "noop", "payload": {"after": "stall"}}),
    )
    .await;
    wait_state(
        &http,
        &base,
        &id_of(&r),
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// 5. Races.

/// Short tasks cancelled at random moments around their end: each ends in exactly one legal
/// terminal state (one state index holds it), a succeeded task has its result and a cancelled
/// one none, and the cancel's answer agrees with the outcome.
#[tokio::test]
#[ignore = "chaos: heavy; `just chaos` runs it"]
async fn cancel_racing_the_end_of_a_task_leaves_one_legal_terminal_state() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let prefix = prefix_of(&errand);
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&["--queues", "default=32"]);
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let n = 200;

    // Each task sleeps 0.3 s. Every fifth is cancelled right after its submit, racing the
    // worker's claim; the others once seen running, 0.2–0.4 s later: racing its end.
    let outcomes: Vec<(String, u16)> = futures::stream::iter(0..n)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let id = id_of(
                    &submit(
                        &http,
                        &base,
                        json!({"kind": "sleep", "payload": {"duration_secs": 0.3}, "id": format!("race-{i}")}),
                    )
                    .await,
                );
                if i % 5 != 0 {
                    wait_for("the task to start", Duration::from_secs(10), || async {
                        let r = errand_testkit::api::get(&http, &base, &id).await;
                        (r["state"] != "queued").then_some(())
                    })
                    .await;
                    tokio::time::sleep(Duration::from_millis(200 + spread(i, 200))).await;
                }
                let status = http
                    .post(format!("{base}/v1/tasks/{id}/cancel"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                (id, status)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let ids: Vec<String> = outcomes.iter().map(|(id, _)| id.clone()).collect();
    wait_all_terminal(&redis, &prefix, &ids, Duration::from_secs(60)).await;
    let recs = records(&http, &base, &ids).await;

    let mut table: BTreeMap<(u16, String), usize> = BTreeMap::new();
    let mut conn = redis.conn().await;
    for ((id, status), r) in outcomes.iter().zip(&recs) {
        let state = r["state"].as_str().unwrap().to_owned();
        *table.entry((*status, state.clone())).or_insert(0) += 1;
        match state.as_str() {
            "succeeded" => assert!(!r["result"].is_null(), "succeeded with a result: {r}"),
            "cancelled" => {
                assert!(r["result"].is_null(), "cancelled without a result: {r}");
                assert_eq!(r["error"]["kind"], "cancelled", "{r}");
            }
            _ => panic!("illegal end state: {r}"),
        }
        match status {
            200 => {
                assert_eq!(state, "cancelled", "cancelled before it ran: {r}");
                assert_eq!(r["attempt"], 0, "never started: {r}");
            }
            202 => assert_eq!(r["attempt"], 1, "{r}"),
            409 => assert_eq!(state, "succeeded", "409 only once it had ended: {r}"),
            other => panic!("cancel answered {other} for {id}"),
        }
        // Exactly one state index holds the task, and it is the record's state.
        let mut pipe = redis::pipe();
        for s in STATES {
            pipe.cmd("ZSCORE")
                .arg(format!("{prefix}:{{default}}:idx:{s}"))
                .arg(id);
        }
        let scores: Vec<Option<f64>> = pipe.query_async(&mut conn).await.unwrap();
        let held: Vec<&str> = STATES
            .iter()
            .zip(scores)
            .filter(|(_, sc)| sc.is_some())
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(held, vec![state.as_str()], "{id}: state indexes {held:?}");
    }
    // Nothing moves afterwards, even past a lease period (a stray lease lapsing, a late
    // finish): this is an observation window, not a wait for a condition.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        records(&http, &base, &ids).await,
        recs,
        "terminal records never change"
    );
    eprintln!(
        "chaos[cancel-vs-finish] tasks={n} terminal={} (cancel answer, end state) -> count: {table:?}",
        recs.len()
    );
    for covered in [(202, "cancelled"), (409, "succeeded")] {
        assert!(
            table.contains_key(&(covered.0, covered.1.to_owned())),
            "the race covered {covered:?}: {table:?}"
        );
    }
}

/// The same id submitted by 50 clients at once (half by body `id`, half by Idempotency-Key):
/// one 202, 49 × 200 with the same record, one job on the queue, one execution.
#[tokio::test]
async fn same_id_from_50_concurrent_clients_is_created_and_run_once() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let prefix = prefix_of(&errand);
    let _api = errand.spawn_api().await;
    let base = errand.base_url();
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut clients = Vec::new();
    for i in 0..50 {
        let (base, barrier) = (base.clone(), barrier.clone());
        clients.push(tokio::spawn(async move {
            // A client (and connection) each, so the requests really are concurrent.
            let http = reqwest::Client::new();
            let mut req = http.post(format!("{base}/v1/tasks"));
            req = if i % 2 == 0 {
                req.json(&json!({"kind": "noop", "payload": {"n": 1}, "id": "dup-1"}))
            } else {
                req.header("Idempotency-Key", "dup-1")
                    .json(&json!({"kind": "noop", "payload": {"n": 1}}))
            };
            barrier.wait().await;
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }));
    }
    let mut answers = Vec::new();
    for c in clients {
        answers.push(c.await.unwrap());
    }
    let created = answers.iter().filter(|(s, _)| *s == 202).count();
    let existing = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, existing), (1, 49), "{answers:?}");
    let created_at = &answers.iter().find(|(s, _)| *s == 202).unwrap().1["created_at"];
    for (_, r) in &answers {
        assert_eq!(r["id"], "dup-1");
        assert_eq!(&r["created_at"], created_at, "the one record: {r}");
    }
    let mut conn = redis.conn().await;
    let jobs: i64 = redis::cmd("LLEN")
        .arg(format!("{prefix}:{{default}}:ready"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(jobs, 1, "one job on the queue");

    let _worker = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let done = wait_state(&http, &base, "dup-1", "succeeded", Duration::from_secs(10)).await;
    assert_eq!(done["attempt"], 1, "one execution: {done}");
    eprintln!(
        "chaos[duplicate-submit] clients=50 answers_202={created} answers_200={existing} \
         jobs_enqueued={jobs} executions={}",
        done["attempt"]
    );
}

/// A failing task waiting for its next attempt (`retrying`) is cancelled at a random point of
/// its backoff: it ends `cancelled` and never runs again.
#[tokio::test]
#[ignore = "chaos: heavy; `just chaos` runs it"]
async fn cancel_during_retrying_ends_it_for_good() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let n = 20;

    let cancelled: Vec<Value> = futures::stream::iter(0..n)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let id = id_of(
                    &submit(
                        &http,
                        &base,
                        json!({"kind": "chaos", "payload": {"mode": "fail"}, "max_attempts": 10, "id": format!("retrying-{i}")}),
                    )
                    .await,
                );
                let r = wait_state(&http, &base, &id, "retrying", Duration::from_secs(10)).await;
                assert_eq!(r["attempt"], 1, "{r}");
                // Somewhere in the backoff window (0.5–1 s after attempt 1), leaving 100 ms.
                let due = time_of(&r["next_attempt_at"]).expect("next_attempt_at");
                let window = (due - Utc::now()).num_milliseconds() - 100;
                if window > 0 {
                    let at = spread(i, window as u64);
                    tokio::time::sleep(Duration::from_millis(at)).await;
                }
                let res = http
                    .post(format!("{base}/v1/tasks/{id}/cancel"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200, "a retrying task is cancelled at once");
                let rec: Value = res.json().await.unwrap();
                assert_eq!(rec["state"], "cancelled", "{rec}");
                rec
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    // Watch past every task's due time, plus upkeep ticks: none is queued or run again.
    let latest_due = cancelled
        .iter()
        .filter_map(|r| time_of(&r["next_attempt_at"]))
        .max()
        .unwrap_or_else(Utc::now);
    let watch_until = latest_due.max(Utc::now()) + chrono::Duration::milliseconds(1500);
    let ids: Vec<String> = cancelled.iter().map(id_of).collect();
    while Utc::now() < watch_until {
        for r in records(&http, &base, &ids).await {
            assert_eq!(r["state"], "cancelled", "{r}");
            assert_eq!(r["attempt"], 1, "never ran again: {r}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "chaos[cancel-retrying] tasks={n} cancelled_in_retrying={} ran_again=0",
        cancelled.len()
    );
}

// ---------------------------------------------------------------------------------------
// 6. Bad input.

/// Asserts a 4xx problem+json; returns its body.
async fn problem(res: reqwest::Response, status: u16, what: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "{what}");
    assert_eq!(
        res.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "{what}"
    );
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["status"], status, "{what}: {p}");
    assert!(
        p["title"].is_string() && p["detail"].is_string(),
        "{what}: {p}"
    );
    p
}

/// One bad request: method, path, content type, body, expected status, field named.
type Case<'a> = (&'a str, String, &'a str, Vec<u8>, u16, Option<&'a str>);

/// Malformed JSON, wrong types, huge bodies, deep nesting, unknown fields, invalid ids and
/// query values, wrong content types, on every route that reads input (submit, batch,
/// listing, long-poll, events, cancel, retry): always a 4xx problem+json naming the field
/// where there is one, and the api stays healthy throughout, also under a burst of them.
#[tokio::test]
async fn bad_input_on_every_route_is_a_4xx_problem_and_the_api_stays_healthy() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis).with("ERRAND__API__MAX_BATCH_BODY_BYTES", "65536");
    let mut api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    // No worker: `existing` stays queued (a retry of it is a 409), `ended` is cancelled (a
    // cancel of it is a 409), whatever the requests below carry.
    let existing = id_of(&submit(&http, &base, json!({"kind": "noop"})).await);
    let ended = id_of(&submit(&http, &base, json!({"kind": "noop"})).await);
    let res = http
        .post(format!("{base}/v1/tasks/{ended}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let deep = "[".repeat(20_000) + &"]".repeat(20_000);
    let huge = format!(
        "{{\"kind\":\"noop\",\"payload\":{{\"s\":\"{}\"}}}}",
        "x".repeat(2 << 20)
    );
    let big_batch = format!(
        "{{\"tasks\":[{}]}}",
        vec!["{\"kind\":\"noop\",\"payload\":{\"s\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}"; 1000]
            .join(",")
    );
    let long_id = "a".repeat(129);

    let mut cases: Vec<Case> = Vec::new();
    let json_ct = "application/json";
    for path in ["/v1/tasks", "/v1/tasks/batch"] {
        let p = path.to_owned();
        cases.extend([
            (
                "POST",
                p.clone(),
                json_ct,
                b"{\"kind\": ".to_vec(),
                400,
                None,
            ),
            ("POST", p.clone(), json_ct, b"not json".to_vec(), 400, None),
            ("POST", p.clone(), json_ct, b"".to_vec(), 400, None),
            ("POST", p.clone(), json_ct, b"null".to_vec(), 400, None),
            ("POST", p.clone(), json_ct, b"[1,2]".to_vec(), 400, None),
            (
                "POST",
                p.clone(),
                json_ct,
                b"\xff\xfe\x00{".to_vec(),
                400,
                None,
            ),
            (
                "POST",
                p.clone(),
                json_ct,
                deep.clone().into_bytes(),
                400,
                None,
            ),
            ("POST", p.clone(), "text/plain", b"{}".to_vec(), 415, None),
            (
                "POST",
                p.clone(),
                "application/x-www-form-urlencoded",
                b"kind=noop".to_vec(),
                415,
                None,
            ),
            ("POST", p.clone(), "", b"{}".to_vec(), 415, None),
            (
                "POST",
                p.clone(),
                json_ct,
                huge.clone().into_bytes(),
                413,
                None,
            ),
        ]);
    }
    let task = |v: Value| serde_json::to_vec(&v).unwrap();
    let batch = |v: Value| serde_json::to_vec(&json!({ "tasks": [v] })).unwrap();
    cases.extend([
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": 5})),
            400,
            Some("kind"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "max_attempts": "3"})),
            400,
            Some("max_attempts"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "delay_secs": -5})),
            400,
            Some("delay_secs"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "timeout_secs": 1e30})),
            400,
            Some("timeout_secs"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "surprise": 1})),
            400,
            None,
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "id": long_id})),
            422,
            Some("id"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "id": "a b"})),
            422,
            Some("id"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "id": ""})),
            422,
            Some("id"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "queue": "q:1"})),
            422,
            Some("queue"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "sleep", "payload": {"duration_secs": 1e300}})),
            422,
            Some("payload.duration_secs"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "sleep", "payload": [1]})),
            422,
            Some("payload"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "chaos", "payload": {"mode": "explode"}})),
            422,
            Some("payload.mode"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "run_at": "2999-01-01T00:00:00Z"})),
            422,
            Some("run_at"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            task(json!({"tasks": {"kind": "noop"}})),
            400,
            Some("tasks"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            task(json!({"tasks": null})),
            400,
            Some("tasks"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            task(json!({"tasks": [], "extra": 1})),
            400,
            None,
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            task(json!({"tasks": []})),
            422,
            Some("tasks"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            batch(json!({"kind": "noop", "id": "no/slash"})),
            422,
            Some("tasks[0].id"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            batch(json!({"kind": "nope"})),
            422,
            Some("tasks[0].kind"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            batch(json!({"kind": "noop", "max_attempts": 0})),
            422,
            Some("tasks[0].max_attempts"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            big_batch.clone().into_bytes(),
            413,
            None,
        ),
    ]);
    for q in [
        "state=bogus",
        "state=",
        "state=SUCCEEDED",
        "limit=0",
        "limit=501",
        "limit=-1",
        "limit=abc",
        "limit=1&limit=2",
        "cursor=garbage",
        "cursor=1:a%20b",
        "queue=a%20b",
        "queue=",
        "kind=",
        "bogus=1",
        "state=%zz",
        "state=%FF",
    ] {
        let field = q.split('=').next().unwrap();
        let field = if q.contains('%') && !q.starts_with("cursor") && !q.starts_with("queue") {
            "query"
        } else {
            field
        };
        cases.push((
            "GET",
            format!("/v1/tasks?{q}"),
            "",
            vec![],
            400,
            Some(field),
        ));
    }
    for q in [
        "wait=-1",
        "wait=abc",
        "wait=99999",
        "wait=",
        "wait=1&wait=2",
        "wait=1.5",
        "other=1",
    ] {
        let field = q.split('=').next().unwrap();
        cases.push((
            "GET",
            format!("/v1/tasks/{existing}?{q}"),
            "",
            vec![],
            400,
            Some(field),
        ));
    }
    for bad in ["a%20b", "%7Bbad%7D", long_id.as_str(), "a%2Fb", "%FF"] {
        for (method, suffix) in [
            ("GET", ""),
            ("GET", "/events"),
            ("POST", "/cancel"),
            ("POST", "/retry"),
        ] {
            cases.push((
                method,
                format!("/v1/tasks/{bad}{suffix}"),
                "",
                vec![],
                400,
                Some("id"),
            ));
        }
    }
    for (method, suffix) in [
        ("GET", ""),
        ("GET", "/events"),
        ("POST", "/cancel"),
        ("POST", "/retry"),
    ] {
        cases.push((
            method,
            format!("/v1/tasks/never-was{suffix}"),
            "",
            vec![],
            404,
            None,
        ));
    }
    cases.extend([
        (
            "DELETE",
            format!("/v1/tasks/{existing}"),
            "",
            vec![],
            404,
            None,
        ),
        (
            "PUT",
            "/v1/tasks".into(),
            json_ct,
            b"{}".to_vec(),
            404,
            None,
        ),
        ("GET", "/v1/tasks/batch/x/y".into(), "", vec![], 404, None),
        (
            "POST",
            format!("/v1/tasks/{ended}/cancel"),
            json_ct,
            b"garbage".to_vec(),
            409,
            None,
        ),
        (
            "POST",
            format!("/v1/tasks/{existing}/retry"),
            json_ct,
            b"garbage".to_vec(),
            409,
            None,
        ),
    ]);

    let total = cases.len();
    for (method, path, ct, body, status, field) in &cases {
        let what = format!(
            "{method} {path} ({ct}, {} bytes: {})",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(120)])
        );
        let mut req = http.request(method.parse().unwrap(), format!("{base}{path}"));
        if !ct.is_empty() {
            req = req.header("content-type", *ct);
        }
        let res = req.body(body.clone()).send().await.expect(&what);
        let p = problem(res, *status, &what).await;
        if let Some(f) = field {
            assert_eq!(p["field"], *f, "{what}: {p}");
        }
    }
    // A burst of the same, concurrently: still no 5xx, and the api stays up and ready.
    let burst: Vec<u16> = futures::stream::iter(cases.iter().cycle().take(600))
        .map(|(method, path, ct, body, _, _)| {
            let mut req = http.request(method.parse().unwrap(), format!("{base}{path}"));
            if !ct.is_empty() {
                req = req.header("content-type", *ct);
            }
            let req = req.body(body.clone());
            async move { req.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(burst.iter().all(|s| (400..500).contains(s)), "{burst:?}");
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(api.child.try_wait().unwrap().is_none(), "api alive");
    let ok = submit(&http, &base, json!({"kind": "noop"})).await;
    assert_eq!(ok["state"], "queued");
    eprintln!(
        "chaos[bad-input] distinct_cases={total} burst_requests={} answers_5xx=0 api_healthy=true",
        burst.len()
    );
}

/// An SSE stream of a task that does not change (queued, no worker) still carries a
/// keep-alive comment every 15 s, so proxies with an idle timeout do not cut it. It did not:
/// the 2 s re-read timer always fired first and restarted the keep-alive timer with it.
#[tokio::test]
#[ignore = "chaos: slow (waits for a 15 s keep-alive); `just chaos` runs it"]
async fn idle_event_stream_sends_keepalives() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let id = id_of(&submit(&http, &base, json!({"kind": "noop"})).await);
    let mut res = http
        .get(format!("{base}/v1/tasks/{id}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let opened = Instant::now();
    let mut seen = String::new();
    let keepalive = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = res.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(": keep-alive") {
                return opened.elapsed();
            }
        }
        panic!("stream ended: {seen}");
    })
    .await
    .unwrap_or_else(|_| panic!("no keep-alive within 20 s; got {seen:?}"));
    assert!(seen.starts_with("event: queued"), "{seen}");
    eprintln!(
        "chaos[sse-keepalive] first_keepalive_ms={}",
        keepalive.as_millis()
    );
}

// ---------------------------------------------------------------------------------------
// 7. Graceful shutdown of the api.

/// SIGTERM while a long-poll is in flight: the long-poll still completes (200, with the task
/// it waited for succeeded), new connections are refused meanwhile, and the api exits 0.
#[tokio::test]
async fn api_sigterm_drains_an_in_flight_long_poll_and_exits_0() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let mut api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let id = id_of(
        &submit(
            &http,
            &base,
            json!({"kind": "sleep", "payload": {"duration_secs": 2.5}}),
        )
        .await,
    );
    wait_state(&http, &base, &id, "running", Duration::from_secs(10)).await;

    // The long-poll is in the handler once the api has read the record: HGETALL is counted.
    let mut conn = redis.conn().await;
    let hgetall_calls = |info: String| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_hgetall:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let before = hgetall_calls(
        redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap(),
    );
    let poll = {
        let (http, url) = (http.clone(), format!("{base}/v1/tasks/{id}?wait=5"));
        tokio::spawn(async move {
            let t = Instant::now();
            let res = http.get(url).send().await.expect("long-poll answered");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap(), t.elapsed())
        })
    };
    wait_for(
        "the long-poll to reach its handler",
        Duration::from_secs(5),
        || {
            let mut conn = conn.clone();
            async move {
                let info: String = redis::cmd("INFO")
                    .arg("commandstats")
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                (hgetall_calls(info) > before).then_some(())
            }
        },
    )
    .await;

    api.signal(Signal::SIGTERM);
    let term = Instant::now();
    // New connections are refused while the in-flight request drains.
    let refused_after = wait_for(
        "new connections to be refused",
        Duration::from_secs(5),
        || {
            let base = base.clone();
            async move {
                let fresh = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .timeout(Duration::from_secs(2))
                    .build()
                    .unwrap();
                match fresh.get(format!("{base}/healthz")).send().await {
                    Err(e) if e.is_connect() => Some(term.elapsed()),
                    _ => None,
                }
            }
        },
    )
    .await;
    assert!(!poll.is_finished(), "the long-poll was still in flight");

    let (status, rec, took) = poll.await.unwrap();
    assert_eq!(status, 200, "{rec}");
    assert_eq!(
        rec["state"], "succeeded",
        "the long-poll saw its task end: {rec}"
    );
    let code = api.wait_exit(Duration::from_secs(10)).await;
    let exited = term.elapsed();
    assert_eq!(code, Some(0), "the api exits 0 after draining");
    eprintln!(
        "chaos[api-drain] long_poll_status={status} long_poll_ms={} refused_new_connections_after_ms={} \
         exit_code=0 exited_after_sigterm_ms={}",
        took.as_millis(),
        refused_after.as_millis(),
        exited.as_millis()
    );
}
