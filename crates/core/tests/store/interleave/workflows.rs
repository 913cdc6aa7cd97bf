//! Workflows in the checker: small random DAGs (some steps map steps) in queue `wf`, their
//! steps run by a worker that sometimes dies before it applies what it ended, with the
//! outbox's leases lapsing, upkeep's look, cancels and retries of failed steps drawn among
//! the other ops. After every step each workflow is read back and held to its invariants;
//! at the end of a run everything is let run out, and every workflow must have ended.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Utc;
use errand_core::{
    store::{Outcome, Recover},
    task::{TaskError, TaskId},
    workflow::{
        Dependency, NewWorkflow, OnFailure, StepSpec, StepTask, WorkflowId, WorkflowRecord,
        WorkflowState,
    },
};
use serde_json::json;

use super::{model::World, rng::Rng};

pub(crate) const WF_QUEUE: &str = "wf";

pub(crate) const WF_AGREE: &str =
    "a step agrees with its task's state once no end of it waits in the outbox";
pub(crate) const WF_ORDER: &str =
    "a step's task is created only once its dependencies have ended as its policy needs";
pub(crate) const WF_COUNTS: &str =
    "a workflow's counts are its steps' and its state is derived from them";
pub(crate) const WF_ENDS: &str = "every workflow ends once its steps can run";

/// What the checker keeps of workflows.
#[derive(Debug, Default)]
pub(crate) struct WfModel {
    pub(crate) ids: Vec<String>,
    serial: usize,
    /// Step tasks seen to exist.
    seen: BTreeSet<String>,
}

/// A workflow op.
#[derive(Debug, Clone)]
pub(crate) enum WfOp {
    /// A DAG: per step, its dependencies (earlier steps, each with a policy) and whether
    /// it is a map step.
    Submit(Vec<(Vec<(usize, OnFailure)>, bool)>),
    /// Fetch up to `n` steps' tasks and end each as its draw says; `advance`: the worker
    /// applies its ends (else it died first, and the outbox carries them).
    Work {
        draws: Vec<u8>,
        advance: bool,
    },
    /// Apply what is due in the outbox.
    Apply,
    /// Time passes: outbox leases, upkeep's stall time, retries' backoff and every lease
    /// lapse; lapsed attempts are recovered.
    Lapse,
    /// Upkeep's look at stalled workflows.
    Sweep,
    Cancel(String),
    /// Retry a failed or cancelled step's task.
    Retry(String),
}

pub(crate) fn name(op: &WfOp) -> &'static str {
    match op {
        WfOp::Submit(_) => "wf_submit",
        WfOp::Work { .. } => "wf_work",
        WfOp::Apply => "wf_apply",
        WfOp::Lapse => "wf_lapse",
        WfOp::Sweep => "wf_sweep",
        WfOp::Cancel(_) => "wf_cancel",
        WfOp::Retry(_) => "wf_retry",
    }
}

/// Most workflows a run submits.
const MOST: usize = 12;

pub(crate) fn possible(name: &str, w: &World) -> bool {
    match name {
        "wf_submit" => w.wf.ids.len() < MOST,
        "wf_cancel" | "wf_retry" => !w.wf.ids.is_empty(),
        _ => true,
    }
}

pub(crate) fn build(name: &str, rng: &mut Rng, w: &World) -> WfOp {
    match name {
        "wf_submit" => {
            let n = 2 + rng.below(4);
            WfOp::Submit(
                (0..n)
                    .map(|i| {
                        let mut deps = Vec::new();
                        for d in 0..i {
                            if rng.chance(0.5) {
                                let on = if rng.chance(0.3) {
                                    OnFailure::Run
                                } else {
                                    OnFailure::Fail
                                };
                                deps.push((d, on));
                            }
                        }
                        (deps, rng.chance(0.2))
                    })
                    .collect(),
            )
        }
        "wf_work" => WfOp::Work {
            draws: (0..1 + rng.below(4))
                .map(|_| rng.below(100) as u8)
                .collect(),
            advance: rng.chance(0.7),
        },
        "wf_apply" => WfOp::Apply,
        "wf_lapse" => WfOp::Lapse,
        "wf_sweep" => WfOp::Sweep,
        "wf_cancel" => WfOp::Cancel(rng.pick(&w.wf.ids).unwrap()),
        _ => {
            // A step of some workflow: its task id (retrying one that is not failed is
            // refused, which is fine).
            let wid = rng.pick(&w.wf.ids).unwrap();
            WfOp::Retry(format!("{wid}.s{}", rng.below(5)))
        }
    }
}

fn task(max_attempts: u32) -> StepTask {
    StepTask {
        kind: "noop".into(),
        queue: WF_QUEUE.into(),
        payload: json!({}),
        max_attempts,
        timeout_secs: None,
        result_ttl_secs: 3600,
        priority: 5,
        concurrency_key: None,
    }
}

pub(crate) async fn apply(w: &mut World, op: WfOp) {
    match op {
        WfOp::Submit(steps) => {
            w.wf.serial += 1;
            let id = format!("w{}", w.wf.serial);
            let wf = NewWorkflow {
                id: WorkflowId::parse(&id).unwrap(),
                steps: steps
                    .iter()
                    .enumerate()
                    .map(|(i, (deps, map))| StepSpec {
                        name: format!("s{i}"),
                        task: task(2),
                        after: deps
                            .iter()
                            .map(|(d, on)| Dependency {
                                step: format!("s{d}"),
                                on_failure: *on,
                            })
                            .collect(),
                        map: *map,
                    })
                    .collect(),
                max_fan_out: 3,
                result_ttl_secs: 3600,
                traceparent: None,
            };
            let shape: Vec<String> = steps
                .iter()
                .enumerate()
                .map(|(i, (d, m))| {
                    let deps: Vec<String> =
                        d.iter().map(|(d, on)| format!("s{d}:{on:?}")).collect();
                    format!(
                        "s{i}{}<-[{}]",
                        if *m { "(map)" } else { "" },
                        deps.join(",")
                    )
                })
                .collect();
            match w.store.submit_workflow(wf).await {
                Ok(_) => {
                    w.wf.ids.push(id.clone());
                    w.log(format!("wf_submit {id}: {}", shape.join(" ")));
                }
                Err(e) => w.error("wf_submit", &e),
            }
        }
        WfOp::Work { draws, advance } => {
            let token = TaskId::generate().to_string();
            let got = match w
                .store
                .fetch(
                    WF_QUEUE,
                    draws.len(),
                    "wfw",
                    super::model::LEASE,
                    &token,
                    Utc::now(),
                )
                .await
            {
                Ok(f) => f.claimed,
                Err(e) => return w.error("wf_work fetch", &e),
            };
            let mut said = Vec::new();
            for (c, d) in got.iter().zip(draws) {
                let step = c.id.split_once('.').map(|(_, s)| s).unwrap_or("");
                let is_map_step = w.wf_is_map(&c.id).await;
                let last = c.attempt >= c.max_attempts;
                let (outcome, what) = match d {
                    0..65 if is_map_step => {
                        let n = usize::from(d % 5); // 4: over the bound of 3
                        let spawn: Vec<_> = (0..n).map(|_| json!({"kind": "noop"})).collect();
                        (
                            Outcome::Succeeded(json!({"spawn": spawn})),
                            format!("spawn {n}"),
                        )
                    }
                    0..65 => (Outcome::Succeeded(json!({"step": step})), "ok".into()),
                    65..90 if !last => (
                        Outcome::Retry {
                            error: err("flaky"),
                            delay: chrono::Duration::zero(),
                            at: Utc::now(),
                        },
                        "retry".into(),
                    ),
                    90..97 => continue, // dies holding it: the lease lapses later
                    _ => (Outcome::Failed(err("bad")), "fail".into()),
                };
                match w.store.finish(c, &outcome, Utc::now()).await {
                    Ok(true) => said.push(format!("{} {what}", c.id)),
                    Ok(false) => said.push(format!("{} {what} refused", c.id)),
                    Err(e) => return w.error("wf_work finish", &e),
                }
            }
            if advance && let Err(e) = w.store.apply_workflow_ends(WF_QUEUE, 100).await {
                return w.error("wf_work advance", &e);
            }
            w.log(format!(
                "wf_work [{}]{}",
                said.join(", "),
                if advance {
                    ""
                } else {
                    " (died before applying)"
                }
            ));
        }
        WfOp::Apply => match w.store.apply_workflow_ends(WF_QUEUE, 100).await {
            Ok(n) => w.log(format!("wf_apply -> {n}")),
            Err(e) => w.error("wf_apply", &e),
        },
        WfOp::Lapse => {
            lapse_all(w).await;
            w.log("wf_lapse".into());
        }
        WfOp::Sweep => match w.store.sweep_workflows(100).await {
            Ok(n) => w.log(format!("wf_sweep -> {n} looked at")),
            Err(e) => w.error("wf_sweep", &e),
        },
        WfOp::Cancel(id) => match w.store.cancel_workflow(&id).await {
            Ok(s) => w.log(format!("wf_cancel {id} -> {s:?}")),
            Err(e) => w.error("wf_cancel", &e),
        },
        WfOp::Retry(id) => {
            let Ok(tid) = TaskId::parse(&id) else { return };
            match w.store.retry(&tid, Utc::now()).await {
                Ok(r) => w.log(format!("wf_retry {id} -> {}", retry_name(&r))),
                Err(e) => w.error("wf_retry", &e),
            }
        }
    }
}

fn retry_name(r: &errand_core::store::Retry) -> &'static str {
    match r {
        errand_core::store::Retry::Gone => "gone",
        errand_core::store::Retry::Conflict(_) => "conflict",
        errand_core::store::Retry::Queued(_) => "queued",
    }
}

fn err(kind: &str) -> TaskError {
    TaskError {
        kind: kind.into(),
        message: "drawn".into(),
    }
}

/// Every score that waits for time made due, and what lapsed recovered.
async fn lapse_all(w: &mut World) {
    let l = w.layout.clone();
    let mut keys = vec![
        l.workflow_outbox(WF_QUEUE),
        l.delayed(WF_QUEUE),
        l.state_index(WF_QUEUE, "running"),
    ];
    for s in 0..errand_core::store::WORKFLOW_SHARDS {
        keys.push(l.workflows_live(s));
    }
    for k in keys {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&k)
            .arg(0)
            .arg(-1)
            .query_async(&mut w.raw)
            .await
            .unwrap();
        for m in members {
            let _: () = redis::cmd("ZADD")
                .arg(&k)
                .arg("XX")
                .arg(0)
                .arg(m)
                .query_async(&mut w.raw)
                .await
                .unwrap();
        }
    }
    for which in [Recover::Due, Recover::LapsedLeases] {
        if let Err(e) = w.store.recover(WF_QUEUE, which, 500, Utc::now()).await {
            w.error("wf_lapse recover", &e);
        }
    }
}

impl World {
    /// Whether task `id` runs a map step (from its workflow's definition).
    async fn wf_is_map(&mut self, id: &str) -> bool {
        let Some((wid, step)) = id.split_once('.') else {
            return false;
        };
        let dag: Option<String> = redis::cmd("HGET")
            .arg(self.layout.workflow(wid))
            .arg(format!("dag:{step}"))
            .query_async(&mut self.raw)
            .await
            .unwrap();
        dag.is_some_and(|d| d.contains("\"map\":true"))
    }
}

const TERMINAL: [&str; 3] = ["succeeded", "failed", "cancelled"];

/// Reads every workflow, its hash's counts, its steps' tasks and the outbox, and checks
/// the invariants.
pub(crate) async fn check(w: &mut World) {
    if w.wf.ids.is_empty() {
        return;
    }
    let outbox: BTreeSet<String> = redis::cmd("ZRANGE")
        .arg(w.layout.workflow_outbox(WF_QUEUE))
        .arg(0)
        .arg(-1)
        .query_async::<Vec<String>>(&mut w.raw)
        .await
        .unwrap()
        .into_iter()
        .collect();
    // Two round trips: every workflow's hash, then every step's task.
    let ids = w.wf.ids.clone();
    let mut p = redis::pipe();
    for wid in &ids {
        p.cmd("HGETALL").arg(w.layout.workflow(wid));
    }
    let hashes: Vec<HashMap<String, String>> = p.query_async(&mut w.raw).await.unwrap();
    let mut recs = Vec::with_capacity(ids.len());
    for (wid, h) in ids.iter().zip(hashes) {
        if h.is_empty() {
            return w.flag(WF_COUNTS, format!("workflow {wid} is gone"));
        }
        let rec = match WorkflowRecord::from_hash(&h) {
            Ok(r) => r,
            Err(e) => return w.flag(WF_COUNTS, format!("workflow {wid} does not read: {e}")),
        };
        let num = |f: &str| h.get(f).and_then(|v| v.parse::<i64>().ok());
        counts_hold(
            w,
            &rec,
            [num("n"), num("ended"), num("failed"), num("cancelled")],
        );
        recs.push(rec);
    }
    let mut p = redis::pipe();
    for rec in &recs {
        for s in &rec.steps {
            p.cmd("HGETALL").arg(w.layout.record(WF_QUEUE, &s.task_id));
        }
    }
    let all: Vec<HashMap<String, String>> = p.query_async(&mut w.raw).await.unwrap();
    let mut all = all.into_iter();
    for rec in &recs {
        let wid = &rec.id;
        let mut tasks: HashMap<String, HashMap<String, String>> = HashMap::new();
        for s in &rec.steps {
            let h = all.next().unwrap();
            if !h.is_empty() {
                tasks.insert(s.name.clone(), h);
            }
        }
        let by_name: BTreeMap<&str, &errand_core::workflow::StepRecord> =
            rec.steps.iter().map(|s| (s.name.as_str(), s)).collect();
        for s in &rec.steps {
            let pending = outbox.contains(&s.task_id);
            let Some(t) = tasks.get(&s.name) else {
                if matches!(s.state.as_str(), "started" | "mapping")
                    || (s.state.is_terminal() && !s.skipped)
                {
                    w.flag(
                        WF_AGREE,
                        format!("{wid}/{} is {} but has no task", s.name, s.state.as_str()),
                    );
                }
                continue;
            };
            let ts = t.get("state").map(String::as_str).unwrap_or("");
            if s.skipped && !pending {
                w.flag(
                    WF_AGREE,
                    format!(
                        "{wid}/{} ended without a task, but its task is {ts}",
                        s.name
                    ),
                );
            }
            if !pending {
                let ok = if TERMINAL.contains(&ts) {
                    if s.map && ts == "succeeded" {
                        // A map step is its task and what it spawned: either can fail it, and
                        // one that succeeds after the workflow's cancel spawns nothing and
                        // ends cancelled.
                        matches!(s.state.as_str(), "mapping" | "succeeded" | "failed")
                            || (rec.cancel_requested && s.state.as_str() == "cancelled")
                    } else {
                        s.state.as_str() == ts
                    }
                } else {
                    matches!(s.state.as_str(), "creating" | "started")
                };
                if !ok {
                    w.flag(
                        WF_AGREE,
                        format!(
                            "{wid}/{} is {} while its task is {ts} and nothing waits in the outbox",
                            s.name,
                            s.state.as_str()
                        ),
                    );
                }
            }
            // First sight of a task: its dependencies had all ended, as its policy needs.
            if w.wf.seen.insert(s.task_id.clone()) {
                for d in &s.after {
                    let Some(dep) = by_name.get(d.step.as_str()) else {
                        continue;
                    };
                    let fine = match d.on_failure {
                        OnFailure::Run => dep.state.is_terminal(),
                        OnFailure::Fail => dep.state.as_str() == "succeeded",
                    };
                    if !fine {
                        w.flag(
                            WF_ORDER,
                            format!(
                                "{wid}/{} has a task while its dependency {} is {} ({:?})",
                                s.name,
                                d.step,
                                dep.state.as_str(),
                                d.on_failure
                            ),
                        );
                    }
                }
            }
        }
    }
}

fn counts_hold(w: &mut World, rec: &WorkflowRecord, c: [Option<i64>; 4]) {
    let wid = &rec.id;
    let n = rec.steps.len() as i64;
    let ended = rec.steps.iter().filter(|s| s.state.is_terminal()).count() as i64;
    let failed = rec
        .steps
        .iter()
        .filter(|s| s.state.as_str() == "failed")
        .count() as i64;
    let cancelled = rec
        .steps
        .iter()
        .filter(|s| s.state.as_str() == "cancelled")
        .count() as i64;
    let got = [
        c[0].unwrap_or(-1),
        c[1].unwrap_or(0),
        c[2].unwrap_or(0),
        c[3].unwrap_or(0),
    ];
    if got != [n, ended, failed, cancelled] {
        w.flag(
            WF_COUNTS,
            format!(
                "{wid}: n/ended/failed/cancelled {got:?}, its steps say {:?}",
                [n, ended, failed, cancelled]
            ),
        );
    }
    let want = if ended < n {
        WorkflowState::Running
    } else if failed > 0 {
        WorkflowState::Failed
    } else if cancelled > 0 {
        WorkflowState::Cancelled
    } else {
        WorkflowState::Succeeded
    };
    if rec.state != want {
        w.flag(
            WF_COUNTS,
            format!(
                "{wid} is {} but its steps make it {}",
                rec.state.as_str(),
                want.as_str()
            ),
        );
    }
}

/// The end of a run: every held claim's lease lapses, everything due runs, every step
/// succeeds from now on; within a bound of rounds every workflow must have ended.
pub(crate) async fn run_out(w: &mut World) {
    if w.wf.ids.is_empty() {
        return;
    }
    for round in 0..60 {
        lapse_all(w).await;
        let _ = w.store.sweep_workflows(100).await;
        let token = TaskId::generate().to_string();
        if let Ok(f) = w
            .store
            .fetch(
                WF_QUEUE,
                100,
                "wfw",
                super::model::LEASE,
                &token,
                Utc::now(),
            )
            .await
        {
            for c in &f.claimed {
                let out = if w.wf_is_map(&c.id).await {
                    Outcome::Succeeded(json!({"spawn": [{"kind": "noop"}]}))
                } else {
                    Outcome::Succeeded(json!({}))
                };
                let _ = w.store.finish(c, &out, Utc::now()).await;
            }
        }
        while let Ok(n) = w.store.apply_workflow_ends(WF_QUEUE, 100).await {
            if n == 0 {
                break;
            }
        }
        let mut running = Vec::new();
        for wid in w.wf.ids.clone() {
            if let Ok(Some(r)) = w.store.workflow(&wid).await
                && r.state == WorkflowState::Running
            {
                running.push(wid);
            }
        }
        if running.is_empty() {
            w.log(format!(
                "wf run-out: every workflow ended after {round} rounds"
            ));
            return;
        }
    }
    let mut left = Vec::new();
    for wid in w.wf.ids.clone() {
        if let Ok(Some(r)) = w.store.workflow(&wid).await
            && r.state == WorkflowState::Running
        {
            let steps: Vec<String> = r
                .steps
                .iter()
                .map(|s| format!("{}={}", s.name, s.state.as_str()))
                .collect();
            left.push(format!("{wid} [{}]", steps.join(" ")));
        }
    }
    w.flag(
        WF_ENDS,
        format!(
            "still running after 60 rounds of letting everything run: {}",
            left.join("; ")
        ),
    );
}
