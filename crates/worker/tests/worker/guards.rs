//! errand's delivery path against the failure modes apalis-redis 1.0's delivery had, end to
//! end with the real binaries (docs/architecture.md lists the defects; each test names the
//! one it rules out), and the upgrade from that layout.

use std::time::{Duration, Instant};

use errand_testkit::api::{submit, wait_state};
use errand_testkit::{Errand, RedisServer, wait_for};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// A worker killed with SIGKILL mid-task: once its lease lapses, another worker runs the
/// task again as attempt 2 and it succeeds. Nothing accepted is lost.
#[tokio::test]
async fn task_of_a_killed_worker_is_rerun_by_another_as_a_new_attempt() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let mut doomed = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let id = submit(
        &http,
        &base,
        json!({"kind": "sleep", "payload": {"duration_secs": 2}}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = wait_state(&http, &base, &id, "running", Duration::from_secs(10)).await;
    doomed.signal(Signal::SIGKILL);
    doomed.wait_exit(Duration::from_secs(5)).await;
    let killed_at = Instant::now();
    let _rescuer = errand.spawn_worker(&[]);

    let done = wait_state(&http, &base, &id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(done["attempt"], 2, "re-run as a new attempt: {done}");
    assert_ne!(done["worker"], first["worker"]);
    assert_eq!(
        done["error"]["kind"], "worker_lost",
        "the lost attempt is on the record: {done}"
    );
    // Lease is 3 s in tests; recovery within lease + upkeep tick + the 2 s task.
    assert!(
        killed_at.elapsed() < Duration::from_secs(12),
        "recovered in {:?}",
        killed_at.elapsed()
    );
}

/// Defect 4: a job whose stored data did not decode killed the apalis worker (and stranded
/// its batch). Now a ready-list entry that names no task is dropped, and a task whose stored
/// record does not decode fails alone (`corrupt_record`); the tasks around them run and the
/// worker keeps working.
#[tokio::test]
async fn undecodable_entries_and_records_fail_alone() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let prefix = errand.env[1].1.clone();
    let _api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let before = submit(&http, &base, json!({"kind": "noop", "payload": {"i": 1}})).await;
    let victim = submit(&http, &base, json!({"kind": "noop", "payload": {"i": 2}})).await;
    let mut conn = redis.conn().await;
    let ready = format!("{prefix}:{{default}}:ready");
    // Garbage on the ready list, between the real tasks.
    for junk in [b"\xff\xfe{not an id".as_slice(), b"no-such-task".as_slice()] {
        let _: () = redis::cmd("RPUSH")
            .arg(&ready)
            .arg(junk)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let after = submit(&http, &base, json!({"kind": "noop", "payload": {"i": 3}})).await;
    // The victim's stored payload is no longer JSON.
    let _: () = redis::cmd("HSET")
        .arg(format!(
            "{prefix}:{{default}}:task:{}",
            victim["id"].as_str().unwrap()
        ))
        .arg("payload")
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .unwrap();

    let mut worker = errand.spawn_worker(&[]);
    for r in [&before, &after] {
        wait_state(
            &http,
            &base,
            r["id"].as_str().unwrap(),
            "succeeded",
            Duration::from_secs(10),
        )
        .await;
    }
    // Read from Redis: the API cannot serve a record whose payload is not JSON either.
    let key = format!(
        "{prefix}:{{default}}:task:{}",
        victim["id"].as_str().unwrap()
    );
    let (state, attempt, error) = wait_for("the victim to fail", Duration::from_secs(10), || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let (state, attempt, error): (String, u32, String) = redis::cmd("HMGET")
                .arg(&key)
                .arg("state")
                .arg("attempt")
                .arg("error")
                .query_async(&mut conn)
                .await
                .ok()?;
            (state == "failed").then_some((state, attempt, error))
        }
    })
    .await;
    let error: Value = serde_json::from_str(&error).unwrap();
    assert_eq!(error["kind"], "corrupt_record", "{state} {error}");
    assert_eq!(attempt, 1, "not retried");
    let left: i64 = redis::cmd("LLEN")
        .arg(&ready)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "the junk entries were taken off the list");
    // The worker is still alive and working.
    let more = submit(&http, &base, json!({"kind": "noop", "payload": {"i": 4}})).await;
    wait_state(
        &http,
        &base,
        more["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    assert!(worker.child.try_wait().unwrap().is_none(), "worker alive");
}

/// The upgrade path. A Redis written by errand before its keys carried hash tags (the
/// untagged layout), holding also what the layout before that left (apalis-redis jobs whose
/// ids stand in the ready list, their data and meta, done sets, its worker registry), is
/// converted when a worker starts: the queued tasks run exactly once, a stale job (its task
/// re-queued as another job) does not run a task again, a scheduled task keeps its due time,
/// a finished task keeps its record, and no key of either old layout is left.
#[tokio::test]
async fn an_older_layout_is_converted_on_start_and_every_task_kept() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let prefix = errand.env[1].1.clone();
    let _api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let mut conn = redis.conn().await;

    let mut ids = Vec::new();
    for i in 0..20 {
        let r = submit(&http, &base, json!({"kind": "noop", "payload": {"i": i}})).await;
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    submit(
        &http,
        &base,
        json!({"kind": "noop", "id": "later", "delay_secs": 2}),
    )
    .await;
    // The same tasks in the untagged layout: records, indexes, ready list, delayed set and
    // the all-tasks index under the bare prefix, no pointers, no layout version.
    let tag = format!("{prefix}:{{default}}:");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{tag}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    for k in keys {
        let rest = k.strip_prefix(&tag).unwrap();
        let old = match rest {
            "ready" => continue,
            "idx" => format!("{prefix}:idx:default"),
            "delayed" => format!("{prefix}:delayed"),
            r if r.starts_with("idx:") => format!("{prefix}:idx:default:{}", &r[4..]),
            r if r.starts_with("task:") => {
                let id = &r[5..];
                let _: () = redis::cmd("ZADD")
                    .arg(format!("{prefix}:tasks"))
                    .arg(1)
                    .arg(id)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                format!("{prefix}:task:{id}")
            }
            other => panic!("unexpected key {other}"),
        };
        let _: () = redis::cmd("RENAME")
            .arg(&k)
            .arg(old)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("DEL")
        .arg(format!("{tag}ready"))
        .arg(format!("{prefix}:layout"))
        .query_async(&mut conn)
        .await
        .unwrap();
    for id in ids.iter().chain([&"later".to_owned()]) {
        let _: () = redis::cmd("DEL")
            .arg(format!("{prefix}:id:{id}"))
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // The ready list holds the queued tasks, most as apalis-redis jobs (the layout before):
    // the job data hash maps each to its task, each job has a meta hash, each record its
    // `job` fence; the last five as the untagged layout's own task ids.
    let q = format!("{prefix}:q:default");
    let ready = format!("{q}:active");
    let job_of = |i: usize| format!("01JOLDJOB{i:017}");
    for (i, id) in ids.iter().enumerate() {
        if i >= 15 {
            let _: () = redis::cmd("RPUSH")
                .arg(&ready)
                .arg(id)
                .query_async(&mut conn)
                .await
                .unwrap();
            continue;
        }
        let jid = job_of(i);
        let _: () = redis::pipe()
            .cmd("HSET")
            .arg(format!("{q}:data"))
            .arg(&jid)
            .arg(id)
            .ignore()
            .cmd("HSET")
            .arg(format!("{q}:meta:{jid}"))
            .arg("status")
            .arg("Pending")
            .ignore()
            .cmd("HSET")
            .arg(format!("{prefix}:task:{id}"))
            .arg("job")
            .arg(&jid)
            .ignore()
            .cmd("RPUSH")
            .arg(&ready)
            .arg(&jid)
            .ignore()
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // A stale job of task 0 (its record names another job), and the bookkeeping of a job
    // that finished under apalis-redis, with its registry.
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg(format!("{q}:data"))
        .arg("01JOLDSTALE0000000000000000")
        .arg(&ids[0])
        .ignore()
        .cmd("RPUSH")
        .arg(&ready)
        .arg("01JOLDSTALE0000000000000000")
        .ignore()
        .cmd("HSET")
        .arg(format!("{q}:data"))
        .arg("01JOLDDONE00000000000000000")
        .arg("gone")
        .ignore()
        .cmd("SADD")
        .arg(format!("{q}:done"))
        .arg("01JOLDDONE00000000000000000")
        .ignore()
        .cmd("ZADD")
        .arg(format!("{q}:workers"))
        .arg(1)
        .arg("old-worker")
        .ignore()
        .cmd("SADD")
        .arg(format!("{q}:inflight:old-worker"))
        .arg("01JOLDDONE00000000000000000")
        .ignore()
        .cmd("ZADD")
        .arg(format!("{prefix}:expiry"))
        .arg(1)
        .arg("default|succeeded|x")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();

    let _worker = errand.spawn_worker(&[]);
    for id in &ids {
        let done = wait_state(&http, &base, id, "succeeded", Duration::from_secs(10)).await;
        assert_eq!(done["attempt"], 1, "ran once: {done}");
    }
    let later = wait_state(&http, &base, "later", "succeeded", Duration::from_secs(10)).await;
    assert_eq!(later["attempt"], 1, "{later}");
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let old: Vec<&String> = left
        .iter()
        .filter(|k| {
            let rest = k.strip_prefix(&format!("{prefix}:")).unwrap();
            !(rest.starts_with('{')
                || rest.starts_with("id:")
                || rest == "queues"
                || rest == "layout")
        })
        .collect();
    assert!(old.is_empty(), "keys of an old layout left: {old:?}");
    let t0 = errand_testkit::api::get(&http, &base, &ids[0]).await;
    assert_eq!(t0["attempt"], 1, "the stale job did not run it again: {t0}");
}

/// Defect 5: no wake-up on push, so an idle worker only looked on its 30 s heartbeat.
/// errand wakes it on submit: each pickup under a second, five times in a row, with the
/// fallback tick at 5 s.
#[tokio::test]
async fn idle_worker_picks_up_a_new_task_in_under_a_second() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis).with("ERRAND__WORKER__POLL_INTERVAL_MS", "5000");
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();
    // Warm up: the worker is subscribed once it has run one task.
    let w = submit(&http, &base, json!({"kind": "noop"})).await;
    wait_state(
        &http,
        &base,
        w["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // let it go idle
    for _ in 0..5 {
        let t = Instant::now();
        let r = submit(&http, &base, json!({"kind": "noop"})).await;
        wait_state(
            &http,
            &base,
            r["id"].as_str().unwrap(),
            "succeeded",
            Duration::from_secs(5),
        )
        .await;
        // The fallback poll is 5 s here, so only the wake-up can make this fast. The bound is
        // the (under 1 s): a debug build on a freshly built, 2-core CI machine took
        // 634 ms for one round while a 10k-task test ran beside it; the release bench (W4)
        // measures the same path at p99 ~2 ms.
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "round trip took {:?}",
            t.elapsed()
        );
    }
}

/// Defect 2: a stopped worker's name stayed registered, so a restart under the same name
/// failed for a heartbeat window. errand's backend registers nothing: a worker restarted at
/// once gets straight to work.
#[tokio::test]
async fn worker_restarted_at_once_gets_to_work() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let mut w = errand.spawn_worker(&[]);
    let a = submit(&http, &base, json!({"kind": "noop"})).await;
    wait_state(
        &http,
        &base,
        a["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    w.signal(Signal::SIGTERM);
    assert_eq!(w.wait_exit(Duration::from_secs(10)).await, Some(0));
    let _w = errand.spawn_worker(&[]);
    let b = submit(&http, &base, json!({"kind": "noop"})).await;
    wait_state(
        &http,
        &base,
        b["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(3),
    )
    .await;
}

/// Submits `n` noop tasks over HTTP with 64 concurrent clients.
async fn submit_many(http: &reqwest::Client, base: &str, n: usize, extra: Value) {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|i| {
            let mut body = json!({"kind": "noop", "payload": {"i": i}});
            if let (Value::Object(b), Value::Object(e)) = (&mut body, &extra) {
                b.extend(e.clone());
            }
            let req = http.post(format!("{base}/v1/tasks")).json(&body);
            async move { assert_eq!(req.send().await.expect("submit").status(), 202) }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
}

/// Counts live keys with a full SCAN, which also reclaims expired keys it passes (so the
/// memory figure that follows is not inflated by keys Redis has not evicted yet).
async fn live_keys(conn: &mut redis::aio::MultiplexedConnection) -> usize {
    let mut cursor = 0u64;
    let mut n = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        // The dashboard's history is one hash per queue and minute with a TTL of a day
        // (bounded by time, not by tasks): counted apart by the caller.
        n += keys.iter().filter(|k| !k.contains(":stats:")).count();
        if next == 0 {
            return n;
        }
        cursor = next;
    }
}

async fn count(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> usize {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(conn)
        .await
        .unwrap();
    keys.len()
}

/// Defect 1: a backlog of ~8,000 due jobs made every apalis-redis fetch fail and killed the
/// workers. errand's fetch takes a bounded slice off the head of the ready list: 50,000
/// queued tasks drain completely, with the worker alive throughout.
#[tokio::test]
async fn backlog_of_50k_tasks_drains_completely_with_workers_alive() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let prefix = errand.env[1].1.clone();
    let _api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    submit_many(&http, &base, 50_000, json!({})).await;

    let mut worker = errand.spawn_worker(&["--queues", "default=64"]);
    let mut conn = redis.conn().await;
    let started = Instant::now();
    wait_for("the 50k backlog to drain", Duration::from_secs(300), || {
        let mut conn = conn.clone();
        let prefix = prefix.clone();
        async move {
            let left: i64 = redis::cmd("LLEN")
                .arg(format!("{prefix}:{{default}}:ready"))
                .query_async(&mut conn)
                .await
                .ok()?;
            let running: i64 = redis::cmd("ZCARD")
                .arg(format!("{prefix}:{{default}}:idx:running"))
                .query_async(&mut conn)
                .await
                .ok()?;
            (left == 0 && running == 0).then_some(())
        }
    })
    .await;
    eprintln!("50k backlog drained in {:?}", started.elapsed());
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "worker alive after the drain"
    );
    // Every record is terminal and succeeded.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:{{default}}:task:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 50_000);
    // In slices: one 50k-command pipeline can outlast the connection's response timeout
    // on a loaded machine.
    for chunk in keys.chunks(5_000) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("HGET").arg(k).arg("state");
        }
        let states: Vec<String> = pipe.query_async(&mut conn).await.unwrap();
        assert!(states.iter().all(|s| s == "succeeded"), "all succeeded");
    }
}

/// Defect 3: apalis-redis kept every finished job forever. Over 10,000 finished tasks (with
/// a short result TTL), no key is left growing: the key count returns to its baseline, no
/// per-job bookkeeping exists at all, every index is back to empty, the emptied queue leaves
/// the queue set, and memory stays within the one bounded structure that grows with
/// finished tasks: the tombstones of expired ids (a field each of a shared hash, expiring
/// with its bucket after `tasks.tombstone_secs`).
#[tokio::test]
async fn no_key_grows_without_bound_over_10k_finished_tasks() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let prefix = errand.env[1].1.clone();
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&["--queues", "default=32"]);
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let mut conn = redis.conn().await;

    // Baseline: one finished task, expired.
    submit_many(&http, &base, 1, json!({"result_ttl_secs": 1})).await;
    let (settle_conn, settle_prefix) = (conn.clone(), prefix.clone());
    let settle = move |expected_tasks: usize| {
        let conn = settle_conn.clone();
        let prefix = settle_prefix.clone();
        async move {
            wait_for(
                "finished tasks to be cleaned up",
                Duration::from_secs(60),
                || {
                    let mut conn = conn.clone();
                    let prefix = prefix.clone();
                    async move {
                        let tasks = count(&mut conn, &format!("{prefix}:{{default}}:task:*")).await;
                        // Fetch memos live for a lease (3 s here), then expire.
                        let memos =
                            count(&mut conn, &format!("{prefix}:{{default}}:fetch:*")).await;
                        // Nothing per job; the queue's lists and zsets are gone once empty.
                        // (The dashboard's per-minute history is bounded by time; counted apart.)
                        let queue_keys = count(&mut conn, &format!("{prefix}:{{default}}:*")).await
                            - count(&mut conn, &format!("{prefix}:{{default}}:stats:*")).await;
                        let succeeded: i64 = redis::cmd("ZCARD")
                            .arg(format!("{prefix}:{{default}}:idx:succeeded"))
                            .query_async(&mut conn)
                            .await
                            .ok()?;
                        // Expired records leave the listing indexes too.
                        let indexed: i64 = redis::cmd("ZCARD")
                            .arg(format!("{prefix}:{{default}}:idx"))
                            .query_async(&mut conn)
                            .await
                            .ok()?;
                        // Upkeep prunes a queue that holds nothing from the queue set.
                        let listed: bool = redis::cmd("SISMEMBER")
                            .arg(format!("{prefix}:queues"))
                            .arg("default")
                            .query_async(&mut conn)
                            .await
                            .ok()?;
                        (tasks == expected_tasks
                            && !listed
                            && memos == 0
                            && queue_keys == expected_tasks
                            && succeeded == expected_tasks as i64
                            && indexed == expected_tasks as i64)
                            .then_some(())
                    }
                },
            )
            .await;
        }
    };
    settle(0).await;
    // Tombstone hashes (keys) and the tombstones they hold (fields).
    let tombstones = |conn: redis::aio::MultiplexedConnection| {
        let prefix = prefix.clone();
        async move {
            let mut conn = conn.clone();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}:{{~tomb:*"))
                .query_async(&mut conn)
                .await
                .unwrap();
            let mut fields = 0;
            for k in &keys {
                let n: usize = redis::cmd("HLEN")
                    .arg(k)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                fields += n;
            }
            (keys.len(), fields)
        }
    };
    assert_eq!(
        count(&mut conn, &format!("{prefix}:id:*")).await,
        0,
        "an expired id keeps no pointer"
    );
    let keys_before = live_keys(&mut conn).await - tombstones(conn.clone()).await.0;
    let info_before: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();

    let minutes_before = Instant::now();
    submit_many(&http, &base, 10_000, json!({"result_ttl_secs": 2})).await;
    settle(0).await;
    let (tomb_keys, tombstones_after) = tombstones(conn.clone()).await;
    let keys_after = live_keys(&mut conn).await - tomb_keys;
    assert_eq!(tombstones_after, 10_001, "one tombstone per expired id");
    assert_eq!(count(&mut conn, &format!("{prefix}:id:*")).await, 0);
    // At most one history hash per minute the test ran through, whatever the task count.
    let stats = count(&mut conn, &format!("{prefix}:{{default}}:stats:*")).await;
    let minutes = minutes_before.elapsed().as_secs() / 60 + 3;
    assert!(
        (1..=minutes as usize).contains(&stats),
        "{stats} history hashes over {minutes} minutes"
    );
    let info_after: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    let used = |info: &str| -> i64 {
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    eprintln!(
        "keys {keys_before} -> {keys_after}; used_memory {} -> {}",
        used(&info_before),
        used(&info_after)
    );
    assert_eq!(
        keys_after, keys_before,
        "same number of keys after 10k finished tasks"
    );
    let growth = used(&info_after) - used(&info_before);
    assert!(
        // A tombstone is a field of a shared hash (~60-100 bytes measured; a key of its own
        // was ~260); nothing else may grow. Tombstones expire after tasks.tombstone_secs.
        growth < tombstones_after as i64 * 150 + 512 * 1024,
        "memory grew {growth} bytes over 10k tasks ({tombstones_after} tombstones included)"
    );
}

/// Defect 9: a task that blocks its executor thread stalled apalis-redis's heartbeat, and
/// apalis then handed its job to another worker. errand's lease lives on a dedicated
/// thread, so it stays alive while the executor is blocked: the other worker's upkeep never
/// finds it lapsed. Every task runs once (attempt 1, by the worker that started it), never
/// twice at the same time.
#[tokio::test]
async fn task_blocking_its_thread_is_not_run_twice() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let _blocked = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();

    // As many blocking tasks as the worker has executor threads (2 cores): its runtime
    // stalls for 7 s, over twice the 3 s lease.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = submit(
            &http,
            &base,
            json!({"kind": "chaos", "payload": {"mode": "block_thread", "secs": 7}}),
        )
        .await;
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    let mut owners = Vec::new();
    for id in &ids {
        let r = wait_state(&http, &base, id, "running", Duration::from_secs(10)).await;
        owners.push(r["worker"].clone());
    }
    let _other = errand.spawn_worker(&[]);

    // While blocked, no second attempt starts anywhere.
    let watch_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < watch_until {
        for id in &ids {
            let r = errand_testkit::api::get(&http, &base, id).await;
            assert_eq!(r["attempt"], 1, "a second attempt started: {r}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (id, owner) in ids.iter().zip(owners) {
        let done = wait_state(&http, &base, id, "succeeded", Duration::from_secs(20)).await;
        assert_eq!(done["attempt"], 1, "{done}");
        assert_eq!(done["result"]["attempt"], 1, "{done}");
        assert_eq!(
            done["worker"], owner,
            "finished by the worker that started it"
        );
        assert!(done["error"].is_null(), "no lost-worker error: {done}");
    }
}
