//! Clients racing the system: cancels around a task's end or during its backoff, and one id
//! submitted by many clients at once.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::Utc;
use errand_testkit::{Errand, RedisServer, api::submit, api::wait_state, wait_for};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{STATES, id_of, prefix_of, records, spread, time_of, wait_all_terminal};

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
