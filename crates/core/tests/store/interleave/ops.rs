//! The operations a run is made of, each one step: what workers do (fetch, finish,
//! progress, renew, release, stop, crash), what clients do (submit, resend a submit,
//! cancel, retry), what upkeep does (recover, expire, fire a schedule's tick, claim and
//! settle webhooks), and the faults (a lost reply, a lapsed lease, a damaged record). An
//! [`Op`] carries every choice, so a scripted sequence and a random run go through the same
//! code; [`pick`] draws one from the seeded generator and the world as last read.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use errand_core::{
    store::{Cancel, Flow, NewTask, Outcome, Recover, Retry, Settle, Submitted, Unique},
    task::{Callback, Progress, TaskError, TaskId, WebhookEvent, WebhookState, WebhookStatus},
};
use serde_json::json;

use super::{
    claims::{self, Claim},
    invariants::{CANCEL, LIVE, ONE_CLAIM, ONE_INDEX, STALE, UNIQUE, WEBHOOK},
    model::{Held, LEASE, PendingFetch, QUEUES, TICK_QUEUE, Task, WORKERS, World},
    rng::Rng,
};

/// The record fields a damaged-record fault deletes: each one fetch needs.
pub(crate) const DAMAGE: [&str; 3] = ["attempt", "max_attempts", "kind"];
/// How often an actor loses the reply of a call it made.
const LOST: f64 = 0.15;
/// The unique keys submits draw from: few, so duplicates are common.
const UNIQUE_KEYS: [&str; 2] = ["u0", "u1"];
/// The concurrency keys submits draw from.
pub(crate) const CONCURRENCY_KEYS: [&str; 2] = ["c0", "c1"];
/// Most live (not terminal) tasks, and most tasks tracked, before submits pause: small
/// enough that actors keep meeting the same tasks.
const MOST_LIVE: usize = 12;
const MOST_TRACKED: usize = 40;

/// A task to submit.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) id: String,
    pub(crate) queue: &'static str,
    pub(crate) max_attempts: u32,
    /// Due in an hour (`scheduled`) rather than now.
    pub(crate) delayed: bool,
    /// With a callback asking for every end (so its ends write webhook deliveries).
    pub(crate) callback: bool,
    /// With a unique key (held an hour: longer than any run).
    pub(crate) unique: Option<&'static str>,
    /// Its priority (1 to 9; 5 the default).
    pub(crate) priority: u8,
    /// Its concurrency key (queue `a` holds one running task per key: `model::PER_KEY`).
    pub(crate) key: Option<&'static str>,
}

impl Spec {
    pub(crate) fn now(id: &str, queue: &'static str, max_attempts: u32) -> Self {
        Self {
            id: id.into(),
            queue,
            max_attempts,
            delayed: false,
            callback: false,
            unique: None,
            priority: 5,
            key: None,
        }
    }

    fn label(&self) -> String {
        format!(
            "{}({},max{}{}{}{})",
            self.id,
            self.queue,
            self.max_attempts,
            if self.delayed { ",delayed" } else { "" },
            if self.callback { ",callback" } else { "" },
            self.unique
                .map(|k| format!(",unique={k}"))
                .unwrap_or_default()
        )
    }
}

/// How a worker ends an attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) enum End {
    Succeed,
    /// Failed: retried when attempts remain, else failed (what the runner does).
    Fail,
    /// Failed for good.
    GiveUp,
    /// Stopped on a cancel it was told of.
    Cancelled,
}

/// One step. Worker ops name a worker slot and, where they act on claims, indexes into what
/// that worker holds.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Submit {
        specs: Vec<Spec>,
        lose: bool,
    },
    Resubmit(String),
    Fetch {
        worker: usize,
        queue: &'static str,
        n: usize,
        lose: bool,
    },
    Finish {
        worker: usize,
        ends: Vec<(usize, End)>,
        lose: bool,
    },
    Progress {
        worker: usize,
        picks: Vec<usize>,
        lose: bool,
    },
    Renew {
        worker: usize,
        lose: bool,
    },
    Release {
        worker: usize,
        picks: Vec<usize>,
    },
    Stop {
        worker: usize,
    },
    Crash {
        worker: usize,
    },
    Cancel(String),
    Retry(String),
    Upkeep,
    Due(String),
    Lapse {
        id: String,
        recover: bool,
    },
    Expire(String),
    Damage {
        id: String,
        field: &'static str,
    },
    Tick,
    HookClaim {
        queue: &'static str,
        lose: bool,
    },
    HookSettle {
        pick: usize,
        done: bool,
        lose: bool,
    },
    HookLapse(String),
    /// A workflow op (`workflows`).
    Wf(super::workflows::WfOp),
}

/// Every op by name, with its weight in a random run.
const WEIGHTS: [(&str, u32); 27] = [
    ("submit", 10),
    ("resubmit", 2),
    ("fetch", 16),
    ("finish", 12),
    ("progress", 4),
    ("renew", 6),
    ("release", 3),
    ("stop", 1),
    ("crash", 1),
    ("cancel", 5),
    ("retry", 5),
    ("upkeep", 4),
    ("due", 3),
    ("lapse", 5),
    ("expire", 3),
    ("damage", 1),
    ("tick", 2),
    ("hook_claim", 3),
    ("hook_settle", 3),
    ("hook_lapse", 1),
    ("wf_submit", 3),
    ("wf_work", 8),
    ("wf_apply", 3),
    ("wf_lapse", 2),
    ("wf_sweep", 2),
    ("wf_cancel", 1),
    ("wf_retry", 2),
];

/// Every name `ERRAND_INTERLEAVE_OFF` may list (`lost`: no lost replies).
pub(crate) fn names() -> Vec<&'static str> {
    let mut v: Vec<&str> = WEIGHTS.iter().map(|(n, _)| *n).collect();
    v.push("lost");
    v
}

impl Op {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Submit { .. } => "submit",
            Op::Resubmit(_) => "resubmit",
            Op::Fetch { .. } => "fetch",
            Op::Finish { .. } => "finish",
            Op::Progress { .. } => "progress",
            Op::Renew { .. } => "renew",
            Op::Release { .. } => "release",
            Op::Stop { .. } => "stop",
            Op::Crash { .. } => "crash",
            Op::Cancel(_) => "cancel",
            Op::Retry(_) => "retry",
            Op::Upkeep => "upkeep",
            Op::Due(_) => "due",
            Op::Lapse { .. } => "lapse",
            Op::Expire(_) => "expire",
            Op::Damage { .. } => "damage",
            Op::Tick => "tick",
            Op::HookClaim { .. } => "hook_claim",
            Op::HookSettle { .. } => "hook_settle",
            Op::HookLapse(_) => "hook_lapse",
            Op::Wf(op) => super::workflows::name(op),
        }
    }
}

/// Draws the next op: any whose name is not in `off` and that has something to act on.
pub(crate) fn pick(rng: &mut Rng, w: &mut World, off: &[String]) -> Op {
    let weights: Vec<u32> = WEIGHTS
        .iter()
        .map(|(name, weight)| {
            if off.iter().any(|o| o == name) || !possible(name, w) {
                0
            } else {
                *weight
            }
        })
        .collect();
    let i = rng.weighted(&weights).expect("upkeep is always possible");
    let lose_ok = !off.iter().any(|o| o == "lost");
    build(WEIGHTS[i].0, rng, w, lose_ok)
}

fn holders(w: &World) -> Vec<usize> {
    (0..WORKERS)
        .filter(|&i| !w.workers[i].held.is_empty())
        .collect()
}

fn possible(name: &str, w: &World) -> bool {
    let tracked = w.tasks.values().filter(|t| !t.expired).count();
    match name {
        "submit" => {
            w.in_states(&["scheduled", "queued", "running", "retrying"])
                .len()
                < MOST_LIVE
                && tracked < MOST_TRACKED
        }
        "resubmit" => !w.unsent.is_empty(),
        "finish" | "progress" | "renew" | "release" => !holders(w).is_empty(),
        "cancel" | "retry" => tracked > 0,
        "due" => !w.in_states(&["scheduled", "retrying"]).is_empty(),
        "lapse" => !w.in_states(&["running"]).is_empty(),
        "expire" => !w
            .in_states(&["succeeded", "failed", "cancelled"])
            .is_empty(),
        "damage" => !w.in_states(&["queued"]).is_empty(),
        "hook_settle" => !w.hooks.is_empty(),
        "hook_lapse" => !w.hook_latest.is_empty(),
        n if n.starts_with("wf_") => super::workflows::possible(n, w),
        _ => true,
    }
}

fn build(name: &str, rng: &mut Rng, w: &mut World, lose_ok: bool) -> Op {
    let lost = |rng: &mut Rng| lose_ok && rng.chance(LOST);
    let queue = |rng: &mut Rng| QUEUES[rng.below(QUEUES.len())];
    let live: Vec<String> = w
        .tasks
        .iter()
        .filter(|(_, t)| !t.expired)
        .map(|(id, _)| id.clone())
        .collect();
    match name {
        "submit" => {
            let n = 1 + rng.below(3);
            let specs = (0..n)
                .map(|_| Spec {
                    id: format!("t{}", w.next_serial()),
                    queue: queue(rng),
                    max_attempts: 1 + rng.below(3) as u32,
                    delayed: rng.chance(0.15),
                    callback: rng.chance(0.4),
                    unique: rng
                        .chance(0.25)
                        .then(|| UNIQUE_KEYS[rng.below(UNIQUE_KEYS.len())]),
                    priority: if rng.chance(0.3) {
                        1 + rng.below(9) as u8
                    } else {
                        5
                    },
                    key: rng
                        .chance(0.3)
                        .then(|| CONCURRENCY_KEYS[rng.below(CONCURRENCY_KEYS.len())]),
                })
                .collect();
            Op::Submit {
                specs,
                lose: lost(rng),
            }
        }
        "resubmit" => Op::Resubmit(rng.pick(&w.unsent).unwrap()),
        "fetch" => Op::Fetch {
            worker: rng.below(WORKERS),
            queue: queue(rng),
            n: 1 + rng.below(4),
            lose: lost(rng),
        },
        "finish" => {
            let worker = rng.pick(&holders(w)).unwrap();
            let held = &w.workers[worker].held;
            let k = 1 + rng.below(held.len().min(3));
            let ends = rng
                .subset(held.len(), k)
                .into_iter()
                .map(|i| {
                    let end = if held[i].cancel_seen && rng.chance(0.7) {
                        End::Cancelled
                    } else {
                        match rng.below(100) {
                            0..55 => End::Succeed,
                            55..90 => End::Fail,
                            _ => End::GiveUp,
                        }
                    };
                    (i, end)
                })
                .collect();
            Op::Finish {
                worker,
                ends,
                lose: lost(rng),
            }
        }
        "progress" => {
            let worker = rng.pick(&holders(w)).unwrap();
            let n = w.workers[worker].held.len();
            let k = 1 + rng.below(n.min(2));
            Op::Progress {
                worker,
                picks: rng.subset(n, k),
                lose: lost(rng),
            }
        }
        "renew" => Op::Renew {
            worker: rng.pick(&holders(w)).unwrap(),
            lose: lost(rng),
        },
        "release" => {
            let worker = rng.pick(&holders(w)).unwrap();
            let n = w.workers[worker].held.len();
            let k = 1 + rng.below(n);
            Op::Release {
                worker,
                picks: rng.subset(n, k),
            }
        }
        "stop" => Op::Stop {
            worker: rng.below(WORKERS),
        },
        "crash" => Op::Crash {
            worker: rng.below(WORKERS),
        },
        "cancel" => {
            let running = w.in_states(&["running"]);
            let from = if !running.is_empty() && rng.chance(0.6) {
                running
            } else {
                live
            };
            Op::Cancel(rng.pick(&from).unwrap())
        }
        "retry" => {
            let ended = w.in_states(&["failed", "cancelled"]);
            let from = if !ended.is_empty() && rng.chance(0.85) {
                ended
            } else {
                w.tasks.keys().cloned().collect()
            };
            Op::Retry(rng.pick(&from).unwrap())
        }
        "due" => Op::Due(rng.pick(&w.in_states(&["scheduled", "retrying"])).unwrap()),
        "lapse" => Op::Lapse {
            id: rng.pick(&w.in_states(&["running"])).unwrap(),
            recover: rng.chance(0.8),
        },
        "expire" => Op::Expire(
            rng.pick(&w.in_states(&["succeeded", "failed", "cancelled"]))
                .unwrap(),
        ),
        "damage" => Op::Damage {
            id: rng.pick(&w.in_states(&["queued"])).unwrap(),
            field: DAMAGE[rng.below(DAMAGE.len())],
        },
        "tick" => Op::Tick,
        "hook_claim" => Op::HookClaim {
            queue: queue(rng),
            lose: lost(rng),
        },
        "hook_settle" => Op::HookSettle {
            pick: rng.below(w.hooks.len()),
            done: rng.chance(0.6),
            lose: lost(rng),
        },
        "hook_lapse" => {
            let ids: Vec<String> = w.hook_latest.keys().cloned().collect();
            Op::HookLapse(rng.pick(&ids).unwrap())
        }
        n if n.starts_with("wf_") => Op::Wf(super::workflows::build(n, rng, w)),
        _ => Op::Upkeep,
    }
}

fn lost_tag(lose: bool) -> &'static str {
    if lose { " [reply lost]" } else { "" }
}

/// Runs `op` against the store and updates the model with what it answered.
pub(crate) async fn apply(w: &mut World, op: Op) {
    *w.tally.ops.entry(op.name()).or_default() += 1;
    match op {
        Op::Submit { specs, lose } => submit(w, specs, lose).await,
        Op::Resubmit(id) => resubmit(w, id).await,
        Op::Fetch {
            worker,
            queue,
            n,
            lose,
        } => fetch(w, worker, queue, n, lose).await,
        Op::Finish { worker, ends, lose } => finish(w, worker, ends, lose).await,
        Op::Progress {
            worker,
            picks,
            lose,
        } => progress(w, worker, picks, lose).await,
        Op::Renew { worker, lose } => renew(w, worker, lose).await,
        Op::Release { worker, picks } => release(w, worker, picks, false).await,
        Op::Stop { worker } => {
            let all = (0..w.workers[worker].held.len()).collect();
            release(w, worker, all, true).await;
        }
        Op::Crash { worker } => {
            let name = w.workers[worker].name();
            let held = labels(w.workers[worker].held.iter().map(|h| &h.claim));
            w.workers[worker].restart();
            w.log(format!("{name} crashed holding [{held}]"));
        }
        Op::Cancel(id) => cancel(w, id).await,
        Op::Retry(id) => retry(w, id).await,
        Op::Upkeep => upkeep(w).await,
        Op::Due(id) => due(w, id).await,
        Op::Lapse { id, recover } => lapse(w, id, recover).await,
        Op::Expire(id) => expire(w, id).await,
        Op::Damage { id, field } => damage(w, id, field).await,
        Op::Tick => tick(w).await,
        Op::HookClaim { queue, lose } => hook_claim(w, queue, lose).await,
        Op::HookSettle { pick, done, lose } => hook_settle(w, pick, done, lose).await,
        Op::HookLapse(did) => hook_lapse(w, did).await,
        Op::Wf(op) => super::workflows::apply(w, op).await,
    }
}

fn labels<'a>(claims: impl Iterator<Item = &'a Claim>) -> String {
    claims.map(Claim::label).collect::<Vec<_>>().join(" ")
}

fn new_task(s: &Spec, now: DateTime<Utc>) -> NewTask {
    NewTask {
        id: TaskId::parse(&s.id).unwrap(),
        kind: "noop".into(),
        queue: s.queue.into(),
        payload: json!({"id": s.id}),
        max_attempts: s.max_attempts,
        timeout_secs: None,
        result_ttl_secs: 3600,
        run_at: s.delayed.then(|| now + chrono::Duration::hours(1)),
        callback: s.callback.then(|| Callback {
            url: "https://hooks.example.com/x".into(),
            events: WebhookEvent::ALL.to_vec(),
        }),
        traceparent: None,
        unique: s.unique.map(|k| Unique {
            key: k.into(),
            for_secs: 3600,
        }),
        flow: Flow {
            priority: s.priority,
            concurrency_key: s.key.map(Into::into),
        },
        step: None,
    }
}

fn accept(w: &mut World, id: String, queue: &str, submit: Option<NewTask>) {
    w.tally.accepted += 1;
    w.tasks.insert(
        id,
        Task {
            queue: queue.into(),
            submit,
            expired: false,
            current: None,
            cancel_since: None,
            terminal: None,
            state: "?".into(),
        },
    );
}

async fn exists(w: &mut World, queue: &str, id: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(w.layout.record(queue, id))
        .query_async::<i64>(&mut w.raw)
        .await
        .unwrap()
        == 1
}

async fn submit(w: &mut World, specs: Vec<Spec>, lose: bool) {
    let now = Utc::now();
    let news: Vec<NewTask> = specs.iter().map(|s| new_task(s, now)).collect();
    let mut said = Vec::new();
    match w.store.submit_many(news.clone(), now).await {
        Ok(answers) => {
            for ((s, nt), a) in specs.iter().zip(news).zip(answers) {
                match a {
                    Submitted::Created(_) => {
                        said.push(format!("{}=created", s.id));
                        took_key(w, s).await;
                        accept(w, s.id.clone(), s.queue, Some(nt));
                    }
                    Submitted::Duplicate(r) => {
                        said.push(format!("{}=duplicate of {}", s.id, r.id));
                        w.tally.duplicates += 1;
                        let holder = s
                            .unique
                            .and_then(|k| w.unique.get(&(s.queue.to_owned(), k.to_owned())));
                        if holder.map(String::as_str) != Some(r.id.as_str()) {
                            w.flag(
                                UNIQUE,
                                format!(
                                    "{} (key {:?}) was answered with {}, not the key's task {holder:?}",
                                    s.id, s.unique, r.id
                                ),
                            );
                        }
                    }
                    Submitted::Existing(_) => {
                        said.push(format!("{}=existing", s.id));
                        w.flag(
                            ONE_INDEX,
                            format!(
                                "the first submit of the fresh id {} was answered `existing`",
                                s.id
                            ),
                        );
                    }
                }
            }
        }
        Err(e) => {
            w.error("submit", &e);
            said.push(format!("error: {e}"));
            for (s, nt) in specs.iter().zip(news) {
                if exists(w, s.queue, &s.id).await {
                    took_key(w, s).await;
                    accept(w, s.id.clone(), s.queue, Some(nt));
                }
            }
        }
    }
    if lose {
        w.tally.lost_replies += 1;
        w.unsent.extend(specs.iter().map(|s| s.id.clone()));
    }
    let what: Vec<String> = specs.iter().map(Spec::label).collect();
    w.log(format!(
        "client submit {} -> {}{}",
        what.join(" "),
        said.join(" "),
        lost_tag(lose)
    ));
}

/// `s`'s task was created: it takes its unique key, which no other live task may hold.
async fn took_key(w: &mut World, s: &Spec) {
    let Some(k) = s.unique else { return };
    let slot = (s.queue.to_owned(), k.to_owned());
    if let Some(prev) = w.unique.get(&slot).cloned()
        && prev != s.id
        && exists(w, s.queue, &prev).await
    {
        w.flag(
            UNIQUE,
            format!("{} was created with key {k} while {prev} holds it", s.id),
        );
    }
    w.unique.insert(slot, s.id.clone());
}

async fn resubmit(w: &mut World, id: String) {
    w.unsent.retain(|u| *u != id);
    let Some(nt) = w
        .tasks
        .get(&id)
        .filter(|t| !t.expired)
        .and_then(|t| t.submit.clone())
    else {
        w.log(format!(
            "client resends the submit of {id}: expired, not sent"
        ));
        return;
    };
    let said = match w.store.submit(nt, Utc::now()).await {
        Ok(Submitted::Existing(r)) => format!("existing ({})", r.state.as_str()),
        Ok(Submitted::Duplicate(r)) => {
            w.flag(
                UNIQUE,
                format!(
                    "a resent submit of {id} was answered with another task, {}",
                    r.id
                ),
            );
            "duplicate".into()
        }
        Ok(Submitted::Created(_)) => {
            w.flag(
                ONE_INDEX,
                format!("a resent submit of {id} created the task a second time"),
            );
            "created".into()
        }
        Err(e) => {
            w.error("resubmit", &e);
            format!("error: {e}")
        }
    };
    w.log(format!("client resends the submit of {id} -> {said}"));
}

async fn fetch(w: &mut World, worker: usize, queue: &str, n: usize, lose: bool) {
    let name = w.workers[worker].name();
    let (pf, resend) = match w.workers[worker].pending.take() {
        Some(p) => (p, true),
        None => (
            PendingFetch {
                token: format!("f{}", w.next_serial()),
                queue: queue.into(),
                n,
            },
            false,
        ),
    };
    let what = format!(
        "{name} fetch {} n={} {}{}",
        pf.queue,
        pf.n,
        pf.token,
        if resend { " (resent)" } else { "" }
    );
    match claims::fetch(&w.store, &pf.queue, pf.n, &name, LEASE, &pf.token).await {
        Ok((got, dropped)) => {
            for c in &got {
                issue(w, c, &name);
            }
            w.log(format!(
                "{what} -> [{}] dropped={dropped}{}",
                labels(got.iter()),
                lost_tag(lose)
            ));
            if lose {
                w.tally.lost_replies += 1;
                w.workers[worker].pending = Some(pf);
            } else {
                w.workers[worker]
                    .held
                    .extend(got.into_iter().map(|claim| Held {
                        claim,
                        cancel_seen: false,
                    }));
            }
        }
        Err(e) => {
            w.error("fetch", &e);
            w.log(format!("{what} -> error: {e}"));
            w.workers[worker].pending = Some(pf);
        }
    }
}

/// A claim a fetch handed out: a new one is now its task's latest, unless it is the same
/// claim answered again to a resent fetch.
fn issue(w: &mut World, c: &Claim, worker: &str) {
    let key = c.key();
    if let Some(before) = w.issued.get(&key) {
        w.tally.replayed += 1;
        if before.task != c.id() {
            let was = before.task.clone();
            w.flag(
                ONE_CLAIM,
                format!(
                    "a resent fetch answered {} for a claim that was of {was}",
                    c.label()
                ),
            );
        }
        return;
    }
    w.tally.claims += 1;
    let step = w.step;
    let Some(t) = w.tasks.get(c.id()).filter(|t| !t.expired) else {
        w.flag(
            ONE_INDEX,
            format!(
                "fetch handed {worker} {}, a task no submit accepted (or expired)",
                c.label()
            ),
        );
        return;
    };
    let (cancel_since, current) = (t.cancel_since, t.current.as_ref().map(Claim::label));
    if let Some(s) = cancel_since {
        w.flag(
            CANCEL,
            format!(
                "fetch started {} for {worker}, though a cancel of {} was accepted at step {s}",
                c.label(),
                c.id()
            ),
        );
    }
    if let Some(cur) = current {
        w.flag(
            ONE_CLAIM,
            format!(
                "fetch handed {worker} {} while claim {cur} was live",
                c.label()
            ),
        );
    }
    w.tasks.get_mut(c.id()).unwrap().current = Some(c.clone());
    w.issued.insert(
        key,
        super::model::Issued {
            task: c.id().to_owned(),
            step,
            worker: worker.to_owned(),
        },
    );
}

/// Judges a write an attempt made: a stale claim's must not land, the live claim's must.
fn judge(w: &mut World, what: &str, worker: &str, c: &Claim, landed: bool) {
    let current = w.is_current(c);
    if landed {
        w.tally.landed += 1;
    } else if !current {
        w.tally.stale_refused += 1;
    }
    if landed && !current {
        let live = w.current_label(c.id());
        w.flag(
            STALE,
            format!(
                "{what} by {worker} with stale claim {} landed; the live claim is {live}",
                c.label()
            ),
        );
    }
    if !landed && current {
        w.flag(
            LIVE,
            format!(
                "{what} by {worker} with the live claim {} was refused",
                c.label()
            ),
        );
    }
}

fn error(kind: &str) -> TaskError {
    TaskError {
        kind: kind.into(),
        message: format!("{kind} (interleaving checker)"),
    }
}

fn outcome(c: &Claim, end: End, worker: &str, step: usize, now: DateTime<Utc>) -> Outcome {
    match end {
        End::Succeed => Outcome::Succeeded(json!({"by": worker, "step": step})),
        End::Fail if c.attempt() < c.max_attempts() => Outcome::Retry {
            error: error("boom"),
            delay: chrono::Duration::zero(),
            at: now,
        },
        End::Fail => Outcome::Failed(error("boom")),
        End::GiveUp => Outcome::Failed(error("fatal")),
        End::Cancelled => Outcome::Cancelled(error("cancelled")),
    }
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Succeeded(_) => "succeeded",
        Outcome::Failed(_) => "failed",
        Outcome::Retry { .. } => "retry",
        Outcome::Cancelled(_) => "cancelled",
    }
}

/// Removes `picks` (indexes) from what `worker` holds.
fn drop_held(w: &mut World, worker: usize, picks: &[usize]) {
    let mut picks = picks.to_vec();
    picks.sort_unstable_by(|a, b| b.cmp(a));
    picks.dedup();
    for i in picks {
        w.workers[worker].held.remove(i);
    }
}

async fn finish(w: &mut World, worker: usize, ends: Vec<(usize, End)>, lose: bool) {
    let name = w.workers[worker].name();
    let n = w.workers[worker].held.len();
    let ends: Vec<(usize, End)> = ends.into_iter().filter(|(i, _)| *i < n).collect();
    if ends.is_empty() {
        w.log(format!("{name} finish: holds no such claim, nothing sent"));
        return;
    }
    let now = Utc::now();
    let batch: Vec<(Claim, Outcome)> = ends
        .iter()
        .map(|&(i, end)| {
            let c = w.workers[worker].held[i].claim.clone();
            let o = outcome(&c, end, &name, w.step, now);
            (c, o)
        })
        .collect();
    let what: Vec<String> = batch
        .iter()
        .map(|(c, o)| format!("{}={}", c.label(), outcome_name(o)))
        .collect();
    let tasks: Vec<String> = batch.iter().map(|(c, _)| c.id().to_owned()).collect();
    let before = records(w, &tasks).await;
    let reply = claims::finish(&w.store, &batch).await;
    let after = records(w, &tasks).await;
    match reply {
        Ok(landed) => {
            for (k, ((c, o), &l)) in batch.iter().zip(&landed).enumerate() {
                let current = w.is_current(c);
                if current || !l {
                    judge(w, "finish", &name, c, l);
                } else {
                    acked(w, &batch, k, &before[k], &after[k], &name);
                }
                if l && current {
                    w.ended.insert(c.key());
                }
                if l && matches!(o, Outcome::Succeeded(_)) {
                    cancelled_then_succeeded(w, c, &name);
                }
            }
            w.log(format!(
                "{name} finish {} -> {landed:?}{}",
                what.join(" "),
                lost_tag(lose)
            ));
            if lose {
                w.tally.lost_replies += 1;
            } else {
                let picks: Vec<usize> = ends.iter().map(|(i, _)| *i).collect();
                drop_held(w, worker, &picks);
            }
        }
        Err(e) => {
            w.error("finish", &e);
            w.log(format!("{name} finish {} -> error: {e}", what.join(" ")));
        }
    }
}

/// Records of `ids` as Redis holds them now (empty: none).
async fn records(w: &mut World, ids: &[String]) -> Vec<HashMap<String, String>> {
    let mut p = redis::pipe();
    for id in ids {
        let q = w.tasks.get(id).map_or("", |t| t.queue.as_str());
        p.cmd("HGETALL").arg(w.layout.record(q, id));
    }
    p.query_async(&mut w.raw).await.unwrap()
}

/// A stale claim's end answered "recorded": only the same end sent again may be, and it
/// must write nothing.
fn acked(
    w: &mut World,
    batch: &[(Claim, Outcome)],
    k: usize,
    before: &HashMap<String, String>,
    after: &HashMap<String, String>,
    worker: &str,
) {
    let c = &batch[k].0;
    let live = w.current_label(c.id());
    if !w.ended.contains(&c.key()) {
        w.flag(
            STALE,
            format!(
                "finish by {worker} with stale claim {} landed; the live claim is {live}",
                c.label()
            ),
        );
        return;
    }
    // A live claim of the same task in the batch accounts for a change.
    let sibling = batch
        .iter()
        .any(|(o, _)| o.id() == c.id() && o.key() != c.key() && w.is_current(o));
    if before != after && !sibling {
        let changed: Vec<&String> = before
            .keys()
            .chain(after.keys())
            .filter(|f| before.get(*f) != after.get(*f))
            .collect();
        w.flag(
            STALE,
            format!(
                "finish by {worker} re-sending the end of {} was answered \"recorded\" and \
                 changed {changed:?} of the record",
                c.label()
            ),
        );
    }
    w.tally.stale_refused += 1;
}

fn cancelled_then_succeeded(w: &mut World, c: &Claim, worker: &str) {
    let Some(since) = w.tasks.get(c.id()).and_then(|t| t.cancel_since) else {
        return;
    };
    let started = w.issued.get(&c.key()).map_or(0, |i| i.step);
    if started > since {
        w.flag(
            CANCEL,
            format!(
                "{} ended `succeeded` by {worker}'s {}, an attempt started at step {started}, \
                 after its cancel was accepted at step {since}",
                c.id(),
                c.label()
            ),
        );
    }
}

async fn progress(w: &mut World, worker: usize, picks: Vec<usize>, lose: bool) {
    let name = w.workers[worker].name();
    let n = w.workers[worker].held.len();
    let percent = (w.step % 100) as u8;
    let json = serde_json::to_string(&Progress {
        percent,
        message: Some(format!("step {}", w.step)),
    })
    .unwrap();
    let batch: Vec<(Claim, String)> = picks
        .iter()
        .filter(|&&i| i < n)
        .map(|&i| (w.workers[worker].held[i].claim.clone(), json.clone()))
        .collect();
    if batch.is_empty() {
        w.log(format!(
            "{name} progress: holds no such claim, nothing sent"
        ));
        return;
    }
    let what = labels(batch.iter().map(|(c, _)| c));
    match claims::progress(&w.store, &batch).await {
        Ok(landed) => {
            for ((c, _), &l) in batch.iter().zip(&landed) {
                judge(w, "progress", &name, c, l);
            }
            if lose {
                w.tally.lost_replies += 1;
            }
            w.log(format!(
                "{name} progress {percent}% {what} -> {landed:?}{}",
                lost_tag(lose)
            ));
        }
        Err(e) => {
            w.error("progress", &e);
            w.log(format!("{name} progress {what} -> error: {e}"));
        }
    }
}

/// Each claim's lease (its task's score in the running index), `None` when not there.
async fn leases(w: &mut World, claims: &[Claim]) -> Vec<Option<f64>> {
    let mut p = redis::pipe();
    for c in claims {
        p.cmd("ZSCORE")
            .arg(w.layout.state_index(c.queue(), "running"))
            .arg(c.id());
    }
    p.query_async(&mut w.raw).await.unwrap()
}

async fn renew(w: &mut World, worker: usize, lose: bool) {
    let name = w.workers[worker].name();
    let claims: Vec<Claim> = w.workers[worker]
        .held
        .iter()
        .map(|h| h.claim.clone())
        .collect();
    if claims.is_empty() {
        w.log(format!("{name} renew: holds nothing"));
        return;
    }
    // Longer than a fetch's lease and growing with the step, so every renewal that lands
    // moves the score up, and one that did not is seen.
    let lease = LEASE * 2 + Duration::from_millis(w.step as u64);
    let before = leases(w, &claims).await;
    let reply = claims::renew(&w.store, &claims, lease).await;
    let after = leases(w, &claims).await;
    let what = labels(claims.iter());
    let r = match reply {
        Ok(r) => r,
        Err(e) => {
            w.error("renew", &e);
            w.log(format!("{name} renew {what} -> error: {e}"));
            return;
        }
    };
    for (k, c) in claims.iter().enumerate() {
        let current = w.is_current(c);
        // Renewal goes by task id today: a live claim of the same task held alongside a
        // stale one accounts for the extension.
        let sibling = claims
            .iter()
            .any(|o| o.id() == c.id() && o.key() != c.key() && w.is_current(o));
        let extended = match (before[k], after[k]) {
            (Some(b), Some(a)) => a > b,
            (None, Some(_)) => true,
            _ => false,
        };
        if extended && !current && !sibling {
            let live = w.current_label(c.id());
            w.flag(
                STALE,
                format!(
                    "renewal by {name} with stale claim {} extended the lease of {} \
                     (score {:?} -> {:?}); the live claim is {live}",
                    c.label(),
                    c.id(),
                    before[k],
                    after[k]
                ),
            );
        }
        if !extended && current {
            w.flag(
                LIVE,
                format!(
                    "renewal by {name} of the live claim {} left its lease at {:?}",
                    c.label(),
                    before[k]
                ),
            );
        }
        if !extended && !current {
            w.tally.stale_refused += 1;
        }
        if let Some(lost) = &r.lost {
            let said = lost.contains(&c.key());
            if said && current {
                w.flag(
                    LIVE,
                    format!("renewal told {name} its live claim {} was lost", c.label()),
                );
            }
            if !said && !current {
                let live = w.current_label(c.id());
                w.flag(
                    STALE,
                    format!(
                        "renewal did not tell {name} that {} is no longer live (the live claim is {live})",
                        c.label(),
                    ),
                );
            }
        }
    }
    w.log(format!(
        "{name} renew {what} -> cancel={:?} lost={:?}{}",
        r.cancel,
        r.lost,
        lost_tag(lose)
    ));
    if lose {
        w.tally.lost_replies += 1;
        return;
    }
    for h in &mut w.workers[worker].held {
        if r.cancel.iter().any(|id| id == h.claim.id()) {
            h.cancel_seen = true;
        }
    }
    if let Some(lost) = &r.lost {
        w.workers[worker]
            .held
            .retain(|h| !lost.contains(&h.claim.key()));
    }
}

async fn release(w: &mut World, worker: usize, picks: Vec<usize>, stop: bool) {
    let name = w.workers[worker].name();
    let n = w.workers[worker].held.len();
    let picks: Vec<usize> = picks.into_iter().filter(|&i| i < n).collect();
    let claims: Vec<Claim> = picks
        .iter()
        .map(|&i| w.workers[worker].held[i].claim.clone())
        .collect();
    let mut said = Vec::new();
    for q in QUEUES {
        let of_q: Vec<Claim> = claims.iter().filter(|c| c.queue() == q).cloned().collect();
        if of_q.is_empty() {
            continue;
        }
        let live = of_q.iter().filter(|c| w.is_current(c)).count();
        match claims::release(&w.store, q, &of_q).await {
            Ok(back) => {
                said.push(format!("{q}: {back} given back"));
                if back > live {
                    w.flag(
                        STALE,
                        format!(
                            "release by {name} gave back {back} of [{}], of which only {live} were live",
                            labels(of_q.iter())
                        ),
                    );
                }
            }
            Err(e) => {
                w.error("release", &e);
                said.push(format!("{q}: error: {e}"));
            }
        }
    }
    drop_held(w, worker, &picks);
    let verb = if stop { "stops, releasing" } else { "releases" };
    if stop {
        w.workers[worker].restart();
    }
    w.log(format!(
        "{name} {verb} [{}] -> {}",
        labels(claims.iter()),
        said.join(", ")
    ));
}

async fn cancel(w: &mut World, id: String) {
    let step = w.step;
    let said = match w
        .store
        .cancel(&TaskId::parse(&id).unwrap(), Utc::now())
        .await
    {
        Ok(Cancel::Requested(_)) => {
            w.tally.cancels += 1;
            if let Some(t) = w.tasks.get_mut(&id) {
                t.cancel_since.get_or_insert(step);
            }
            "requested".to_owned()
        }
        Ok(Cancel::Cancelled(_)) => {
            w.tally.cancels += 1;
            "cancelled".into()
        }
        Ok(Cancel::Terminal(s)) => format!("already {}", s.as_str()),
        Ok(Cancel::Gone) => "gone".into(),
        Err(e) => {
            w.error("cancel", &e);
            format!("error: {e}")
        }
    };
    w.log(format!("client cancel {id} -> {said}"));
}

async fn retry(w: &mut World, id: String) {
    w.retried = Some(id.clone());
    let said = match w
        .store
        .retry(&TaskId::parse(&id).unwrap(), Utc::now())
        .await
    {
        Ok(Retry::Queued(_)) => {
            w.tally.retries += 1;
            "queued".to_owned()
        }
        Ok(Retry::Conflict(s)) => format!("conflict ({})", s.as_str()),
        Ok(Retry::Gone) => "gone".into(),
        Err(e) => {
            w.error("retry", &e);
            format!("error: {e}")
        }
    };
    w.log(format!("client retry {id} -> {said}"));
}

async fn recover(w: &mut World, queue: &str, which: Recover) -> String {
    match w.store.recover(queue, which, 100, Utc::now()).await {
        Ok((seen, queued)) => format!("{seen} seen {queued} queued"),
        Err(e) => {
            w.error("recover", &e);
            format!("error: {e}")
        }
    }
}

async fn upkeep(w: &mut World) {
    let mut said = Vec::new();
    for q in QUEUES {
        let due = recover(w, q, Recover::Due).await;
        let lapsed = recover(w, q, Recover::LapsedLeases).await;
        let expired = match w.store.expire_indexes(q, 100).await {
            Ok(n) => n.to_string(),
            Err(e) => {
                w.error("expire", &e);
                format!("error: {e}")
            }
        };
        said.push(format!("{q}: due {due}, lapsed {lapsed}, expiry {expired}"));
    }
    w.log(format!("upkeep -> {}", said.join("; ")));
}

/// Sets `id`'s score in `key` to 0 if it is there (XX): due, or lapsed, at once.
async fn make_due(w: &mut World, key: String, id: &str) -> i64 {
    redis::cmd("ZADD")
        .arg(key)
        .arg("XX")
        .arg("CH")
        .arg(0)
        .arg(id)
        .query_async(&mut w.raw)
        .await
        .unwrap()
}

async fn due(w: &mut World, id: String) {
    let q = w.tasks[&id].queue.clone();
    let moved = make_due(w, w.layout.delayed(&q), &id).await;
    let said = recover(w, &q, Recover::Due).await;
    w.log(format!(
        "time passes for {id} (delayed score moved: {moved}); recover due {q} -> {said}"
    ));
}

async fn lapse(w: &mut World, id: String, run_recover: bool) {
    let q = w.tasks[&id].queue.clone();
    let moved = make_due(w, w.layout.state_index(&q, "running"), &id).await;
    w.tally.lapses += 1;
    let said = if run_recover {
        recover(w, &q, Recover::LapsedLeases).await
    } else {
        "not run".into()
    };
    w.log(format!(
        "lease of {id} lapses (score moved: {moved}); recover lapsed {q} -> {said}"
    ));
}

async fn expire(w: &mut World, id: String) {
    let (q, state) = {
        let t = &w.tasks[&id];
        (t.queue.clone(), t.state.clone())
    };
    let key = w.layout.record(&q, &id);
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut w.raw)
        .await
        .unwrap();
    make_due(w, w.layout.state_index(&q, &state), &id).await;
    let said = match w.store.expire_indexes(&q, 1000).await {
        Ok(n) => format!("{n} handled"),
        Err(e) => {
            w.error("expire", &e);
            format!("error: {e}")
        }
    };
    let t = w.tasks.get_mut(&id).unwrap();
    t.expired = true;
    t.current = None;
    w.tally.expired += 1;
    w.unsent.retain(|u| *u != id);
    w.log(format!(
        "{state} record {id} expires (deleted, as its TTL would); expiry {q} -> {said}"
    ));
}

async fn damage(w: &mut World, id: String, field: &'static str) {
    let q = w.tasks[&id].queue.clone();
    let n: i64 = redis::cmd("HDEL")
        .arg(w.layout.record(&q, &id))
        .arg(field)
        .query_async(&mut w.raw)
        .await
        .unwrap();
    w.tally.damaged += 1;
    w.log(format!(
        "fault: field `{field}` of queued {id} deleted ({n})"
    ));
}

async fn tick(w: &mut World) {
    let tick = w.next_tick;
    w.next_tick += 1;
    let _: i64 = redis::cmd("ZADD")
        .arg(w.layout.schedules())
        .arg(tick)
        .arg(w.schedule.as_str())
        .query_async(&mut w.raw)
        .await
        .unwrap();
    let expected = w
        .schedule
        .task_id(DateTime::from_timestamp_millis(tick).unwrap())
        .to_string();
    let said = match w.store.fire_due_schedules(10, Duration::from_secs(1)).await {
        Ok(r) => format!(
            "fired {:?} lost {}",
            r.fired.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            r.lost
        ),
        Err(e) => {
            w.error("tick", &e);
            format!("error: {e}")
        }
    };
    if !w.tasks.contains_key(&expected) && exists(w, TICK_QUEUE, &expected).await {
        w.tally.fired += 1;
        accept(w, expected.clone(), TICK_QUEUE, None);
    }
    w.log(format!("schedule tick {tick} due -> {said}"));
}

async fn hook_claim(w: &mut World, queue: &str, lose: bool) {
    let got = match w.store.claim_webhooks(queue, LEASE, 3).await {
        Ok(got) => got,
        Err(e) => {
            w.error("hook_claim", &e);
            w.log(format!("webhook sender claims {queue} -> error: {e}"));
            return;
        }
    };
    let mut said = Vec::new();
    for c in &got {
        w.tally.hooks += 1;
        said.push(format!("{}#{}", c.id, c.attempt));
        if let Some(&prev) = w.hook_latest.get(&c.id)
            && prev >= c.attempt
        {
            w.flag(
                WEBHOOK,
                format!(
                    "a claim of delivery {} got attempt {}, after attempt {prev} was claimed",
                    c.id, c.attempt
                ),
            );
        }
        w.hook_latest.insert(c.id.clone(), c.attempt);
    }
    if lose {
        w.tally.lost_replies += 1;
    } else {
        w.hooks.extend(got);
    }
    w.log(format!(
        "webhook sender claims {queue} -> [{}]{}",
        said.join(" "),
        lost_tag(lose)
    ));
}

async fn hook_settle(w: &mut World, pick: usize, done: bool, lose: bool) {
    let Some(c) = w.hooks.get(pick).cloned() else {
        w.log("webhook sender settles: holds no such claim".into());
        return;
    };
    let status = WebhookStatus {
        id: c.id.clone(),
        event: c.event,
        state: if done {
            WebhookState::Delivered
        } else {
            WebhookState::Pending
        },
        attempts: c.attempt,
        last_status: Some(if done { 200 } else { 503 }),
        last_error: None,
        next_attempt_at: None,
        delivered_at: done.then(Utc::now),
    };
    let settle = if done {
        Settle::Done
    } else {
        Settle::Retry(Duration::ZERO)
    };
    let said = match w.store.settle_webhook(&c, settle, &status).await {
        Ok(landed) => {
            let latest = w.hook_latest.get(&c.id).copied().unwrap_or(0);
            if landed && c.attempt < latest {
                w.flag(
                    WEBHOOK,
                    format!(
                        "the settle of delivery {} by lapsed attempt {} landed over attempt {latest}",
                        c.id, c.attempt
                    ),
                );
            }
            landed.to_string()
        }
        Err(e) => {
            w.error("hook_settle", &e);
            format!("error: {e}")
        }
    };
    if lose {
        w.tally.lost_replies += 1;
    } else {
        w.hooks.remove(pick);
    }
    w.log(format!(
        "webhook sender settles {}#{} {} -> {said}{}",
        c.id,
        c.attempt,
        if done { "done" } else { "retry" },
        lost_tag(lose)
    ));
}

async fn hook_lapse(w: &mut World, did: String) {
    let Some(q) = did
        .rsplit_once('.')
        .and_then(|(task, _)| w.tasks.get(task))
        .map(|t| t.queue.clone())
    else {
        return;
    };
    let moved = make_due(w, w.layout.webhook_due(&q), &did).await;
    w.log(format!(
        "webhook claim of {did} lapses (score moved: {moved})"
    ));
}
