//! Redis misbehaving under load: SIGKILLed and started again (AOF on), and stalling for
//! longer than errand's response timeout (`DEBUG SLEEP`).

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use chrono::Utc;
use errand_testkit::{Errand, Proc, RedisServer, api::submit, api::wait_state};
use serde_json::json;

use crate::helpers::{
    Driver, assert_all_succeeded, count_states, duplicates, id_of, pid_of, prefix_of, records,
    time_of, wait_all_terminal,
};

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
