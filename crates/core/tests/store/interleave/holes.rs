//! The holes the random checker found in the store as it was at fda9a3b, each as the
//! exact sequence of steps that opens it. Every test here FAILED on fda9a3b (the
//! invariant it broke is in its doc) and passes once the store fences attempts by claim
//! token and fetch validates a record before it writes.

use errand_testkit::RedisServer;

use super::{
    driver,
    model::World,
    ops::{End, Op, Spec},
};

/// Runs `ops`; the world at the end, with the server it lives on (kept up for reads).
async fn clean(name: &str, ops: Vec<Op>) -> (RedisServer, World) {
    let redis = RedisServer::start().await;
    match driver::script(&redis, name, ops).await {
        Ok(w) => (redis, w),
        Err(f) => panic!("{f}"),
    }
}

fn fetch(worker: usize, n: usize) -> Op {
    Op::Fetch {
        worker,
        queue: "a",
        n,
        lose: false,
    }
}

/// Hole 1 (fda9a3b: "nothing queued is unreachable"): a record missing `attempt` in the
/// middle of a fetch's batch made `fetch.lua` error after it had popped the whole batch and
/// claimed the tasks before it; Redis keeps those writes, so the damaged task and the ones
/// after it were `queued` with no ready-list entry, and nothing ever put them back.
#[tokio::test]
async fn hole1_a_damaged_record_in_a_fetch_batch_strands_no_task() {
    let (_redis, mut w) = clean(
        "hole1",
        vec![
            Op::Submit {
                specs: vec![
                    Spec::now("t1", "a", 3),
                    Spec::now("t2", "a", 3),
                    Spec::now("t3", "a", 3),
                ],
                lose: false,
            },
            Op::Damage {
                id: "t2".into(),
                field: "attempt",
            },
            fetch(0, 3),
        ],
    )
    .await;
    let held: Vec<&str> = w.workers[0].held.iter().map(|h| h.claim.id()).collect();
    assert_eq!(
        held,
        ["t1", "t3"],
        "the sound records of the batch are claimed"
    );
    let t2 = w.record("t2").await;
    assert_eq!(t2["state"], "failed", "the damaged record is ended: {t2:?}");
    assert!(t2["error"].contains("corrupt_record"), "{t2:?}");
}

/// Hole 2 (fda9a3b: "at most one live claim per task", then "a write with a stale claim
/// never lands"): attempts were fenced by number and a manual retry starts the numbers
/// again, so worker 0's attempt 1, cut off past its lease (the task failed on recovery and
/// an operator retried it), was as live as worker 1's new attempt 1: its progress and
/// finish landed on worker 1's run, and its renewals kept worker 1's lease.
#[tokio::test]
async fn hole2_a_stale_attempt_never_writes_over_the_retried_run() {
    let (_redis, mut w) = clean(
        "hole2",
        vec![
            Op::Submit {
                specs: vec![Spec::now("t1", "a", 1)],
                lose: false,
            },
            fetch(0, 1),
            Op::Lapse {
                id: "t1".into(),
                recover: true,
            },
            Op::Retry("t1".into()),
            fetch(1, 1),
            Op::Progress {
                worker: 0,
                picks: vec![0],
                lose: false,
            },
            Op::Finish {
                worker: 0,
                ends: vec![(0, End::Succeed)],
                lose: true,
            },
            Op::Renew {
                worker: 0,
                lose: false,
            },
            Op::Finish {
                worker: 0,
                ends: vec![(0, End::Succeed)],
                lose: false,
            },
            Op::Renew {
                worker: 1,
                lose: false,
            },
            Op::Finish {
                worker: 1,
                ends: vec![(0, End::Succeed)],
                lose: false,
            },
        ],
    )
    .await;
    let t1 = w.record("t1").await;
    assert_eq!(t1["state"], "succeeded", "{t1:?}");
    assert!(t1["result"].contains("w1.0"), "worker 1's result: {t1:?}");
}

/// Hole 3 (fda9a3b: "a cancelled task never runs again"): a cancel of a claim still in a
/// stopping worker's buffer only flagged the running task; `release.lua` queued it again
/// with the flag, `fetch.lua` never looked at the flag, and another worker ran it to
/// `succeeded`.
#[tokio::test]
async fn hole3_a_cancelled_claim_given_back_never_runs() {
    let (_redis, mut w) = clean(
        "hole3",
        vec![
            Op::Submit {
                specs: vec![Spec::now("t1", "a", 3)],
                lose: false,
            },
            fetch(0, 1),
            Op::Cancel("t1".into()),
            Op::Stop { worker: 0 },
            fetch(1, 1),
            Op::Finish {
                worker: 1,
                ends: vec![(0, End::Succeed)],
                lose: false,
            },
        ],
    )
    .await;
    let t1 = w.record("t1").await;
    assert_eq!(t1["state"], "cancelled", "{t1:?}");
}

/// Found by the checker on the token fence (main at 46065ac, seed 1, step 1403: "at most
/// one live claim per task"): a task cancelled while queued keeps its ready-list entry, and
/// a retry pushes a second one; `fetch.lua`, now reading every popped record before it
/// writes, saw the task `queued` at both entries and claimed it twice in one fetch (two
/// tokens, the same attempt): one worker ran it twice at once. Only the first entry may
/// claim it; the second is dropped.
#[tokio::test]
async fn two_ready_entries_of_one_task_in_one_fetch_claim_it_once() {
    let (_redis, w) = clean(
        "twice",
        vec![
            Op::Submit {
                specs: vec![Spec::now("t1", "a", 3)],
                lose: false,
            },
            Op::Cancel("t1".into()),
            Op::Retry("t1".into()),
            fetch(0, 2),
        ],
    )
    .await;
    let held: Vec<String> = w.workers[0].held.iter().map(|h| h.claim.label()).collect();
    assert_eq!(held.len(), 1, "one claim of t1: {held:?}");
}
