//! Workers lost or replaced under load: a worker SIGKILLed while running many tasks, and a
//! rolling restart (each worker SIGTERMed and replaced in turn).

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use chrono::Utc;
use errand_testkit::{Errand, Proc, RedisServer, wait_for};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::helpers::{
    Driver, assert_all_succeeded, count_states, duplicates, id_of, pid_of, prefix_of,
    queue_wait_ms, records, snapshot, spread, time_of, wait_all_terminal,
};

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
