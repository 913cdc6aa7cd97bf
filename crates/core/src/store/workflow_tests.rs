//! Workflows (`workflows.rs`, `workflow_ends.rs`): shapes, results passed along, failure
//! policies, retry and cancel, map steps, and a crash between any two calls. Against a real
//! redis-server and a real Redis Cluster. docs/workflows.md states the rules tested here.

use std::{collections::HashMap, time::Duration};

use chrono::Utc;
use errand_testkit::{RedisServer, cluster::RedisCluster, wait_for};
use serde_json::{Value, json};

use super::bounds_tests::cluster_store;
use super::pause::tests::store;
use super::{Claimed, Outcome, TaskStore, WorkflowSubmitted};
use crate::task::{TaskError, TaskId};
use crate::workflow::{
    Dependency, NewWorkflow, OnFailure, StepSpec, StepState, StepTask, WorkflowId, WorkflowRecord,
    WorkflowState,
};

const LEASE: Duration = Duration::from_secs(30);

fn step(name: &str, queue: &str, after: &[(&str, OnFailure)], payload: Value) -> StepSpec {
    StepSpec {
        name: name.into(),
        task: StepTask {
            kind: "noop".into(),
            queue: queue.into(),
            payload,
            max_attempts: 1,
            timeout_secs: None,
            result_ttl_secs: 600,
            priority: 5,
            concurrency_key: None,
        },
        after: after
            .iter()
            .map(|(s, on)| Dependency {
                step: (*s).into(),
                on_failure: *on,
            })
            .collect(),
        map: false,
    }
}

fn workflow(id: &str, steps: Vec<StepSpec>) -> NewWorkflow {
    let wf = NewWorkflow {
        id: WorkflowId::parse(id).unwrap(),
        steps,
        max_fan_out: 5,
        result_ttl_secs: 600,
        traceparent: None,
    };
    wf.check(100).unwrap();
    wf
}

async fn submit(s: &TaskStore, wf: NewWorkflow) -> WorkflowRecord {
    match s.submit_workflow(wf).await.unwrap() {
        WorkflowSubmitted::Created(r) => r,
        WorkflowSubmitted::Existing(r) => panic!("{} existed", r.id),
    }
}

async fn get(s: &TaskStore, id: &str) -> WorkflowRecord {
    s.workflow(id).await.unwrap().expect("the workflow")
}

fn state_of(r: &WorkflowRecord, step: &str) -> StepState {
    r.steps.iter().find(|s| s.name == step).expect(step).state
}

/// One worker's turn over `queues`: every ready task is claimed and ended as `decide` says
/// (from its claim, payload and inputs), then the outboxes are applied. Returns the claims.
async fn turn(
    s: &TaskStore,
    queues: &[&str],
    decide: &impl Fn(&Claimed) -> Outcome,
) -> Vec<Claimed> {
    let mut ran = Vec::new();
    for q in queues {
        let f = s
            .fetch(
                q,
                100,
                "w",
                LEASE,
                &TaskId::generate().to_string(),
                Utc::now(),
            )
            .await
            .unwrap();
        for c in f.claimed {
            assert!(s.finish(&c, &decide(&c), Utc::now()).await.unwrap());
            ran.push(c);
        }
        while s.apply_workflow_ends(q, 100).await.unwrap() > 0 {}
    }
    ran
}

/// Turns until workflow `id` has ended; returns every claim run, in order.
async fn run_to_end(
    s: &TaskStore,
    id: &str,
    queues: &[&str],
    decide: impl Fn(&Claimed) -> Outcome,
) -> (WorkflowRecord, Vec<Claimed>) {
    let mut ran = Vec::new();
    for _ in 0..50 {
        let r = get(s, id).await;
        if r.state.is_terminal() {
            return (r, ran);
        }
        ran.extend(turn(s, queues, &decide).await);
    }
    panic!("workflow {id} never ended: {:?}", get(s, id).await);
}

fn echo(c: &Claimed) -> Outcome {
    Outcome::Succeeded(json!({"step": c.id, "inputs": c.inputs}))
}

fn failed(kind: &str) -> Outcome {
    Outcome::Failed(TaskError {
        kind: kind.into(),
        message: "boom".into(),
    })
}

/// A chain's results pass along; a chord's last step gets every branch's result and id.
async fn shapes(s: &TaskStore, q: &str, other: &str) {
    use OnFailure::Fail;
    let chain = workflow(
        "chain",
        vec![
            step("a", q, &[], json!({"n": 1})),
            step("b", other, &[("a", Fail)], json!({})),
            step("c", q, &[("b", Fail)], json!({})),
        ],
    );
    let r = submit(s, chain).await;
    assert_eq!(r.state, WorkflowState::Running);
    assert_eq!(state_of(&r, "a"), StepState::Started);
    assert_eq!(state_of(&r, "b"), StepState::Waiting);
    let (r, ran) = run_to_end(s, "chain", &[q, other], echo).await;
    assert_eq!(r.state, WorkflowState::Succeeded);
    let order: Vec<&str> = ran.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(order, ["chain.a", "chain.b", "chain.c"]);
    assert_eq!(ran[0].workflow.as_deref(), Some("chain"));
    assert_eq!(ran[0].inputs, Some(json!({})));
    assert_eq!(
        ran[1].inputs.as_ref().unwrap()["a"],
        json!({"id": "chain.a", "state": "succeeded", "result": {"step": "chain.a", "inputs": {}}})
    );
    assert_eq!(
        ran[2].inputs.as_ref().unwrap()["b"]["result"]["inputs"]["a"]["id"],
        "chain.a"
    );
    // The task of a step says whose it is.
    let t = s
        .get(&TaskId::parse("chain.b").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (t.workflow.as_deref(), t.step.as_deref()),
        (Some("chain"), Some("b"))
    );

    let mut steps: Vec<StepSpec> = (0..4)
        .map(|i| step(&format!("p{i}"), q, &[], json!({})))
        .collect();
    let all: Vec<(String, OnFailure)> = (0..4).map(|i| (format!("p{i}"), Fail)).collect();
    let refs: Vec<(&str, OnFailure)> = all.iter().map(|(n, f)| (n.as_str(), *f)).collect();
    steps.push(step("sum", q, &refs, json!({})));
    submit(s, workflow("chord", steps)).await;
    let (r, ran) = run_to_end(s, "chord", &[q], echo).await;
    assert_eq!(r.state, WorkflowState::Succeeded);
    let last = ran.last().unwrap();
    assert_eq!(last.id, "chord.sum");
    let inputs = last.inputs.as_ref().unwrap().as_object().unwrap();
    assert_eq!(inputs.len(), 4);
    assert_eq!(inputs["p3"]["id"], "chord.p3");
    // Submitting the same id again changes nothing.
    let again = s
        .submit_workflow(workflow("chord", vec![step("x", q, &[], json!({}))]))
        .await
        .unwrap();
    assert!(matches!(again, WorkflowSubmitted::Existing(r) if r.steps.len() == 5));
}

/// A failed dependency fails what must not run without it, and hands its error to what
/// may; retrying the failed step runs what waited on it, and the workflow ends again.
async fn failure_and_retry(s: &TaskStore, q: &str) {
    use OnFailure::{Fail, Run};
    let wf = workflow(
        "policy",
        vec![
            step("a", q, &[], json!({})),
            step("b", q, &[("a", Fail)], json!({})),
            step("c", q, &[("b", Fail)], json!({})),
            step("d", q, &[("a", Run)], json!({})),
        ],
    );
    submit(s, wf).await;
    let fail_a = |c: &Claimed| {
        if c.id == "policy.a" {
            failed("bad_input")
        } else {
            echo(c)
        }
    };
    let (r, ran) = run_to_end(s, "policy", &[q], fail_a).await;
    assert_eq!(r.state, WorkflowState::Failed);
    assert_eq!(state_of(&r, "b"), StepState::Failed);
    assert_eq!(state_of(&r, "c"), StepState::Failed);
    let c = r.steps.iter().find(|s| s.name == "c").unwrap();
    assert!(c.skipped);
    assert_eq!(
        c.end.as_ref().unwrap()["error"]["kind"],
        "dependency_failed"
    );
    let d = ran.iter().find(|c| c.id == "policy.d").expect("d ran");
    assert_eq!(
        d.inputs.as_ref().unwrap()["a"]["error"]["kind"],
        "bad_input"
    );
    assert_eq!(ran.len(), 2, "b and c never ran");

    // Retry a: b and c wait for it again, and run once it succeeds.
    s.retry(&TaskId::parse("policy.a").unwrap(), Utc::now())
        .await
        .unwrap();
    while s.apply_workflow_ends(q, 100).await.unwrap() > 0 {}
    let r = get(s, "policy").await;
    assert_eq!(r.state, WorkflowState::Running);
    assert_eq!(state_of(&r, "b"), StepState::Waiting);
    assert_eq!(state_of(&r, "d"), StepState::Succeeded);
    let (r, ran) = run_to_end(s, "policy", &[q], echo).await;
    assert_eq!(r.state, WorkflowState::Succeeded);
    let order: Vec<&str> = ran.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(order, ["policy.a", "policy.b", "policy.c"]);
}

/// Cancel: what has not started never will; what runs is asked to stop; the workflow ends
/// `cancelled`.
async fn cancel(s: &TaskStore, q: &str) {
    use OnFailure::Fail;
    let wf = workflow(
        "stop",
        vec![
            step("a", q, &[], json!({})),
            step("b", q, &[("a", Fail)], json!({})),
        ],
    );
    submit(s, wf).await;
    let f = s
        .fetch(
            q,
            10,
            "w",
            LEASE,
            &TaskId::generate().to_string(),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(f.claimed.len(), 1);
    assert_eq!(
        s.cancel_workflow("stop").await.unwrap(),
        Some(WorkflowState::Running)
    );
    let a = s
        .get(&TaskId::parse("stop.a").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(a.cancel_requested);
    let r = get(s, "stop").await;
    assert_eq!(state_of(&r, "b"), StepState::Cancelled);
    // The worker sees the cancel and ends the attempt so.
    let end = Outcome::Cancelled(TaskError {
        kind: "cancelled".into(),
        message: "cancelled".into(),
    });
    assert!(s.finish(&f.claimed[0], &end, Utc::now()).await.unwrap());
    while s.apply_workflow_ends(q, 100).await.unwrap() > 0 {}
    let r = get(s, "stop").await;
    assert_eq!(r.state, WorkflowState::Cancelled);
    assert!(r.cancel_requested);
    assert_eq!(s.cancel_workflow("nope").await.unwrap(), None);
}

/// A map step's result spawns steps; the step after it gets their results in order. More
/// than the fan-out bound fails the map step, and what must not run without it.
async fn map_reduce(s: &TaskStore, q: &str) {
    use OnFailure::Fail;
    let mut m = step("split", q, &[], json!({}));
    m.map = true;
    let wf = workflow(
        "mr",
        vec![m.clone(), step("join", q, &[("split", Fail)], json!({}))],
    );
    submit(s, wf).await;
    let decide = |c: &Claimed| {
        if c.id == "mr.split" {
            Outcome::Succeeded(
                json!({"spawn": (0..3).map(|i| json!({"kind": "noop", "payload": {"i": i, "tags": [], "big": 12345678901234567u64}})).collect::<Vec<_>>()}),
            )
        } else if c.id.starts_with("mr.split.") {
            // The payload arrives exactly as the map step returned it.
            let p = c.payload.as_ref().unwrap();
            assert_eq!(
                (&p["tags"], &p["big"]),
                (&json!([]), &json!(12345678901234567u64)),
                "{p}"
            );
            Outcome::Succeeded(json!({"square": p["i"].as_u64().unwrap().pow(2), "none": []}))
        } else {
            echo(c)
        }
    };
    let (r, ran) = run_to_end(s, "mr", &[q], decide).await;
    assert_eq!(r.state, WorkflowState::Succeeded);
    assert_eq!(r.steps.len(), 5);
    assert_eq!(r.steps[1].name, "split.0");
    assert_eq!(r.steps[1].parent.as_deref(), Some("split"));
    let join = ran.last().unwrap();
    assert_eq!(join.id, "mr.join");
    assert_eq!(
        join.inputs.as_ref().unwrap()["split"]["result"],
        json!([{"square": 0, "none": []}, {"square": 1, "none": []}, {"square": 4, "none": []}])
    );

    let wf = workflow(
        "wide",
        vec![m, step("join", q, &[("split", Fail)], json!({}))],
    );
    submit(s, wf).await;
    let too_many = |c: &Claimed| {
        if c.id == "wide.split" {
            Outcome::Succeeded(json!({"spawn": vec![json!({"kind": "noop"}); 6]}))
        } else {
            echo(c)
        }
    };
    let (r, _) = run_to_end(s, "wide", &[q], too_many).await;
    assert_eq!(r.state, WorkflowState::Failed);
    let split = &r.steps[0];
    assert_eq!(
        split.end.as_ref().unwrap()["error"]["kind"],
        "invalid_spawn"
    );
    assert_eq!(state_of(&r, "join"), StepState::Failed);

    // Numbers that are not whole, or not numbers, are refused whole, never half spawned.
    for (i, bad) in [
        json!({"max_attempts": 2.5}),
        json!({"timeout_secs": "nan"}),
        json!({"max_attempts": 0}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut m = step("split", q, &[], json!({}));
        m.map = true;
        let id = format!("odd{i}");
        submit(s, workflow(&id, vec![m])).await;
        let mut entry = json!({"kind": "noop"});
        for (k, v) in bad.as_object().unwrap() {
            entry[k] = v.clone();
        }
        let odd = move |_: &Claimed| Outcome::Succeeded(json!({"spawn": [entry.clone()]}));
        let (r, _) = run_to_end(s, &id, &[q], odd).await;
        assert_eq!(r.state, WorkflowState::Failed, "{bad}");
        assert_eq!(r.steps.len(), 1, "nothing spawned for {bad}");
        assert_eq!(
            r.steps[0].end.as_ref().unwrap()["error"]["kind"],
            "invalid_spawn"
        );
    }

    // A cancel while the map step runs: it spawns nothing and ends cancelled.
    let mut m = step("split", q, &[], json!({}));
    m.map = true;
    submit(s, workflow("mcancel", vec![m])).await;
    let f = s
        .fetch(
            q,
            10,
            "w",
            LEASE,
            &TaskId::generate().to_string(),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(f.claimed.len(), 1);
    s.cancel_workflow("mcancel").await.unwrap();
    let spawn = Outcome::Succeeded(json!({"spawn": [{"kind": "noop"}, {"kind": "noop"}]}));
    assert!(s.finish(&f.claimed[0], &spawn, Utc::now()).await.unwrap());
    while s.apply_workflow_ends(q, 100).await.unwrap() > 0 {}
    let r = get(s, "mcancel").await;
    assert_eq!(r.state, WorkflowState::Cancelled);
    assert_eq!(r.steps.len(), 1, "nothing spawned after the cancel");
}

/// Marks every entry of the outbox and every live workflow due now: what a lapsed lease,
/// or the stall time passing, does.
async fn lapse(s: &TaskStore, q: &str, wid: &str) {
    let mut c = s.connection();
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(s.layout().workflow_outbox(q))
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    for id in ids {
        let _: () = redis::cmd("ZADD")
            .arg(s.layout().workflow_outbox(q))
            .arg(0)
            .arg(id)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let shard = super::layout::workflow_shard(wid);
    let _: () = redis::cmd("ZADD")
        .arg(s.layout().workflows_live(shard))
        .arg("XX")
        .arg(0)
        .arg(wid)
        .query_async(&mut c)
        .await
        .unwrap();
}

/// A crash between any two calls: after the workflow was written and before its first
/// steps; after an end was applied and before what it made ready was created; and a
/// step's task deleted under it. None leaves the workflow waiting.
async fn crashes(s: &TaskStore, q: &str) {
    use OnFailure::Fail;
    // 1. The workflow is written, its first step never created.
    let wf = workflow(
        "crash1",
        vec![
            step("a", q, &[], json!({})),
            step("b", q, &[("a", Fail)], json!({})),
        ],
    );
    let mut inv = s.workflow_op("create", "crash1");
    inv.arg(5).arg(600).arg("").arg(2);
    inv.arg("a")
        .arg(serde_json::to_string(&wf.steps[0].task).unwrap())
        .arg(r#"{"after":[],"next":["b"],"map":false}"#)
        .arg(0);
    inv.arg("b")
        .arg(serde_json::to_string(&wf.steps[1].task).unwrap())
        .arg(r#"{"after":[["a","fail"]],"next":[],"map":false}"#)
        .arg(1);
    s.run_workflow_op(&inv).await.unwrap();
    assert!(
        s.get(&TaskId::parse("crash1.a").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    lapse(s, q, "crash1").await;
    assert!(s.sweep_workflows(100).await.unwrap() >= 1);
    assert_eq!(state_of(&get(s, "crash1").await, "a"), StepState::Started);

    // 2. a's end applied, b's create lost: the entry is taken again after its lease.
    let f = s
        .fetch(
            q,
            10,
            "w",
            LEASE,
            &TaskId::generate().to_string(),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(
        s.finish(&f.claimed[0], &echo(&f.claimed[0]), Utc::now())
            .await
            .unwrap()
    );
    let mut inv = s.workflow_op("apply", "crash1");
    inv.arg("a").arg("succeeded").arg("{}").arg(1);
    let applied = s.run_workflow_op(&inv).await.unwrap();
    assert_eq!(applied.creates.len(), 1, "b is ready");
    assert_eq!(state_of(&get(s, "crash1").await, "b"), StepState::Creating);
    lapse(s, q, "crash1").await;
    assert_eq!(s.apply_workflow_ends(q, 100).await.unwrap(), 1);
    assert!(
        s.get(&TaskId::parse("crash1.b").unwrap())
            .await
            .unwrap()
            .is_some(),
        "the entry applied again created b"
    );

    // 3. b's task is deleted before it ends. Upkeep's look first sees b's task (so b is
    // started: a step still `creating` whose task is missing is created again), then, the
    // task gone, ends the step.
    lapse(s, q, "crash1").await;
    s.sweep_workflows(100).await.unwrap();
    assert_eq!(state_of(&get(s, "crash1").await, "b"), StepState::Started);
    let mut c = s.connection();
    let _: () = redis::cmd("DEL")
        .arg(s.layout().record(q, "crash1.b"))
        .query_async(&mut c)
        .await
        .unwrap();
    lapse(s, q, "crash1").await;
    s.sweep_workflows(100).await.unwrap();
    let r = get(s, "crash1").await;
    assert_eq!(state_of(&r, "b"), StepState::Failed);
    assert_eq!(r.steps[1].end.as_ref().unwrap()["error"]["kind"], "expired");
    assert_eq!(r.state, WorkflowState::Failed);
    // An ended workflow leaves upkeep's look.
    let mut c = s.connection();
    let live: Option<f64> = redis::cmd("ZSCORE")
        .arg(
            s.layout()
                .workflows_live(super::layout::workflow_shard("crash1")),
        )
        .arg("crash1")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(live, None);
    // A task submitted on its own under a step's id is not that step's: the step fails.
    let mut own = super::pause::tests::task(q);
    own.id = TaskId::parse("taken.a").unwrap();
    s.submit(own, Utc::now()).await.unwrap();
    submit(s, workflow("taken", vec![step("a", q, &[], json!({}))])).await;
    let r = get(s, "taken").await;
    assert_eq!(r.state, WorkflowState::Failed);
    assert_eq!(
        r.steps[0].end.as_ref().unwrap()["error"]["kind"],
        "id_taken"
    );
    // Listing: newest first.
    let (list, _) = s.workflows(None, 100).await.unwrap();
    let ids: HashMap<&str, WorkflowState> = list.iter().map(|w| (w.id.as_str(), w.state)).collect();
    assert_eq!(ids.get("crash1"), Some(&WorkflowState::Failed));
    assert!(list.windows(2).all(|w| w[0].created_at >= w[1].created_at));
    // Paged two at a time (several were created in one ms): each once, none skipped.
    let mut paged = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let (page, next) = s
            .workflows(after.as_ref().map(|(ms, id)| (*ms, id.as_str())), 2)
            .await
            .unwrap();
        paged.extend(page.into_iter().map(|w| w.id));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let all: Vec<String> = list.iter().map(|w| w.id.clone()).collect();
    assert_eq!(paged, all);
}

async fn all(s: &TaskStore) {
    shapes(s, "wq", "wq2").await;
    failure_and_retry(s, "wq").await;
    cancel(s, "wq").await;
    map_reduce(s, "wq").await;
    crashes(s, "wc").await;
}

#[tokio::test]
async fn workflows_on_one_redis() {
    let redis = RedisServer::start().await;
    all(&store(&redis).await).await;
}

#[tokio::test]
async fn workflows_on_a_cluster() {
    let cluster = RedisCluster::start().await;
    let s = cluster_store(&cluster, "wf");
    wait_for("the cluster", Duration::from_secs(10), || async {
        s.queues(Utc::now()).await.ok()
    })
    .await;
    all(&s).await;
}
