//! What is read back from Redis after every step (one pipeline: every index and list of
//! every queue, and every tracked task's record, TTL and id pointer) and the invariants it
//! must keep. Checks that need a reply (a write that landed, a fetch that handed out a
//! claim) are made where the reply arrives, in `ops`; they use the names here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{
    model::{KEYED_QUEUE, PER_KEY, QUEUES, World},
    ops::CONCURRENCY_KEYS,
};

pub(crate) const ONE_INDEX: &str = "an accepted task is always in exactly one index of its state";
pub(crate) const ONE_CLAIM: &str =
    "at most one live claim per task (and it is the latest one handed out)";
pub(crate) const TERMINAL: &str = "a terminal record never changes except by an explicit retry";
pub(crate) const STALE: &str =
    "a write with a stale claim never lands (finish, progress, renew, release)";
pub(crate) const LIVE: &str = "the live claim's writes land";
pub(crate) const CANCEL: &str =
    "a cancelled task never runs again, so never ends `succeeded` by a later attempt";
pub(crate) const REACHABLE: &str = "nothing queued is unreachable";
pub(crate) const EXPIRY: &str = "a terminal record has a TTL and a live one has none";
pub(crate) const WEBHOOK: &str = "a lapsed webhook claim never settles over a later one";
pub(crate) const KEY_LIMIT: &str =
    "no more tasks of one concurrency key run at once than the queue's per_key limit";
pub(crate) const KEY_HOLD: &str =
    "a concurrency key is held by its running tasks alone (every exit from running frees it)";
pub(crate) const UNIQUE: &str =
    "one live task per unique key and queue, and a duplicate is answered with it";

const STATES: [&str; 7] = [
    "scheduled",
    "queued",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "cancelled",
];
const TERMINAL_STATES: [&str; 3] = ["succeeded", "failed", "cancelled"];

/// One task as read.
#[derive(Debug)]
pub(crate) struct Rec {
    fields: HashMap<String, String>,
    pttl: i64,
    pointer: Option<String>,
}

/// Everything read after a step.
#[derive(Debug, Default)]
pub(crate) struct Obs {
    /// (queue, state) -> ids in that state index.
    index: BTreeMap<(String, String), BTreeSet<String>>,
    live: BTreeMap<String, BTreeSet<String>>,
    ready: BTreeMap<String, Vec<String>>,
    delayed: BTreeMap<String, BTreeSet<String>>,
    records: BTreeMap<String, Rec>,
    /// Concurrency key -> the ids its running set holds (queue `KEYED_QUEUE`).
    holding: BTreeMap<String, BTreeSet<String>>,
}

/// Reads what the checks need in one round trip.
pub(crate) async fn observe(w: &mut World) -> Obs {
    let l = w.layout.clone();
    let mut p = redis::pipe();
    for q in QUEUES {
        for s in STATES {
            p.cmd("ZRANGE").arg(l.state_index(q, s)).arg(0).arg(-1);
        }
        p.cmd("ZRANGE").arg(l.queue_index(q)).arg(0).arg(-1);
        p.cmd("LRANGE").arg(l.ready_list(q)).arg(0).arg(-1);
        p.cmd("ZRANGE").arg(l.delayed(q)).arg(0).arg(-1);
        // Where else a queued task may wait: its priority's list, throttled by its kind's
        // rate, or waiting for its concurrency key.
        for band in (1..=9).filter(|&b| b != 5) {
            p.cmd("LRANGE").arg(l.band_list(q, band)).arg(0).arg(-1);
        }
        p.cmd("ZRANGE").arg(l.throttled(q)).arg(0).arg(-1);
        for k in CONCURRENCY_KEYS {
            p.cmd("LRANGE").arg(l.key_waiting(q, k)).arg(0).arg(-1);
        }
    }
    for k in CONCURRENCY_KEYS {
        p.cmd("SMEMBERS").arg(l.key_running(KEYED_QUEUE, k));
    }
    let tracked: Vec<(String, String)> = w
        .tasks
        .iter()
        .filter(|(_, t)| !t.expired)
        .map(|(id, t)| (id.clone(), t.queue.clone()))
        .collect();
    for (id, q) in &tracked {
        p.cmd("HGETALL").arg(l.record(q, id));
        p.cmd("PTTL").arg(l.record(q, id));
        p.cmd("GET").arg(l.pointer(id));
    }
    let replies: Vec<redis::Value> = p.query_async(&mut w.raw).await.expect("observe");
    let mut it = replies.into_iter();
    let mut next = || it.next().expect("a reply per command");
    let mut obs = Obs::default();
    for q in QUEUES {
        for s in STATES {
            let ids: Vec<String> = redis::from_redis_value(next()).unwrap();
            obs.index
                .insert((q.into(), s.into()), ids.into_iter().collect());
        }
        let ids: Vec<String> = redis::from_redis_value(next()).unwrap();
        obs.live.insert(q.into(), ids.into_iter().collect());
        let mut ready: Vec<String> = redis::from_redis_value(next()).unwrap();
        let ids: Vec<String> = redis::from_redis_value(next()).unwrap();
        obs.delayed.insert(q.into(), ids.into_iter().collect());
        for _ in 0..8 + 1 + CONCURRENCY_KEYS.len() {
            let more: Vec<String> = redis::from_redis_value(next()).unwrap();
            ready.extend(more);
        }
        obs.ready.insert(q.into(), ready);
    }
    for k in CONCURRENCY_KEYS {
        let ids: Vec<String> = redis::from_redis_value(next()).unwrap();
        obs.holding.insert(k.into(), ids.into_iter().collect());
    }
    for (id, _) in tracked {
        let rec = Rec {
            fields: redis::from_redis_value(next()).unwrap(),
            pttl: redis::from_redis_value(next()).unwrap(),
            pointer: redis::from_redis_value(next()).unwrap(),
        };
        obs.records.insert(id, rec);
    }
    obs
}

/// Checks every invariant against `obs`, then brings the model up to date with it.
pub(crate) fn check(w: &mut World, obs: &Obs) {
    let step = w.step;
    let retried = w.retried.clone();
    let mut flags: Vec<(&'static str, String)> = Vec::new();
    let (mut stranded, mut stranded_at) = (Vec::new(), None);
    let ids: Vec<String> = obs.records.keys().cloned().collect();
    for id in &ids {
        let rec = &obs.records[id];
        let t = &w.tasks[id];
        if rec.fields.is_empty() {
            flags.push((ONE_INDEX, format!("{id} was accepted but has no record")));
            continue;
        }
        let state = rec.fields.get("state").cloned().unwrap_or_default();
        if !STATES.contains(&state.as_str()) {
            flags.push((ONE_INDEX, format!("{id}'s record has state {state:?}")));
            continue;
        }
        for q in QUEUES {
            for s in STATES {
                let inside = obs.index[&(q.to_owned(), s.to_owned())].contains(id);
                let want = q == t.queue && s == state;
                if inside && !want {
                    flags.push((
                        ONE_INDEX,
                        format!(
                            "{id} is {state} (queue {}) but also in idx:{s} of {q}",
                            t.queue
                        ),
                    ));
                } else if want && !inside {
                    flags.push((
                        ONE_INDEX,
                        format!("{id} is {state} but not in its queue's idx:{state}"),
                    ));
                }
            }
        }
        if !obs.live[&t.queue].contains(id) {
            flags.push((ONE_INDEX, format!("{id} is missing from its queue's index")));
        }
        if rec.pointer.as_deref() != Some(t.queue.as_str()) {
            flags.push((
                ONE_INDEX,
                format!("{id}'s id pointer is {:?}, not its queue", rec.pointer),
            ));
        }
        let terminal = TERMINAL_STATES.contains(&state.as_str());
        if terminal && rec.pttl <= 0 {
            flags.push((
                EXPIRY,
                format!("{state} {id} has no TTL (PTTL {})", rec.pttl),
            ));
        }
        if !terminal && rec.pttl != -1 {
            flags.push((
                EXPIRY,
                format!("{state} {id} has a TTL (PTTL {})", rec.pttl),
            ));
        }
        let lost = match state.as_str() {
            "queued" => !obs.ready[&t.queue].contains(id),
            "scheduled" | "retrying" => !obs.delayed[&t.queue].contains(id),
            _ => false,
        };
        if lost {
            // One report for them all, where the first was found.
            stranded_at.get_or_insert(flags.len());
            stranded.push(format!("{id} ({state}, queue {})", t.queue));
        }

        // At most one live claim, and it is the latest handed out.
        let holders: Vec<(String, String, String)> = w
            .workers
            .iter()
            .flat_map(|wk| {
                wk.held
                    .iter()
                    .filter(|h| h.claim.id() == id && h.claim.fence_accepts(&rec.fields))
                    .map(move |h| (wk.name(), h.claim.label(), h.claim.key()))
            })
            .collect();
        let current = t.current.as_ref().map(|c| c.key());
        if holders.len() > 1 {
            let who: Vec<String> = holders
                .iter()
                .map(|(w, l, _)| format!("{w} holds {l}"))
                .collect();
            flags.push((
                ONE_CLAIM,
                format!(
                    "the store's fence accepts {} held claims of {id} ({}); the latest handed out is {}",
                    holders.len(),
                    who.join(", "),
                    w.current_label(id)
                ),
            ));
        } else if let Some((who, label, key)) = holders.first()
            && current.as_ref() != Some(key)
        {
            flags.push((
                ONE_CLAIM,
                format!(
                    "the store's fence accepts {who}'s {label} for {id}, but the latest claim handed out is {}",
                    w.current_label(id)
                ),
            ));
        }

        // A terminal record never changes but by a retry.
        let snap: BTreeMap<String, String> = rec
            .fields
            .iter()
            .filter(|(k, _)| k.as_str() != "webhook")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let by_retry = retried.as_deref() == Some(id.as_str());
        if let Some(prev) = &t.terminal
            && !by_retry
        {
            if !terminal {
                flags.push((
                    TERMINAL,
                    format!(
                        "{id} left {} for {state} without a retry",
                        prev.get("state").map_or("?", String::as_str)
                    ),
                ));
            } else if *prev != snap {
                flags.push((
                    TERMINAL,
                    format!("{id}'s {state} record changed: {}", diff(prev, &snap)),
                ));
            }
        }

        // A task whose cancel was accepted never waits to run again.
        let cancel_since = if by_retry && state == "queued" {
            None
        } else if rec.fields.get("cancel_requested").map(String::as_str) == Some("1") {
            t.cancel_since.or(Some(step))
        } else {
            t.cancel_since
        };
        if let Some(since) = cancel_since
            && matches!(state.as_str(), "queued" | "scheduled" | "retrying")
        {
            flags.push((
                CANCEL,
                format!(
                    "{id}'s cancel was accepted at step {since}, yet it is {state} again: \
                     another attempt will run it"
                ),
            ));
        }

        let t = w.tasks.get_mut(id).unwrap();
        t.cancel_since = cancel_since;
        t.terminal = terminal.then_some(snap);
        if t.current
            .as_ref()
            .is_some_and(|c| state != "running" || !c.fence_accepts(&rec.fields))
        {
            t.current = None;
        }
        t.state = state;
    }

    if let Some(at) = stranded_at {
        flags.insert(
            at,
            (
                REACHABLE,
                format!(
                    "{} waiting with no entry to be found by (a queued task must be on a \
                     ready list, throttled, or waiting for its key; a delayed one in its delayed set): nothing will ever run them",
                    stranded.join(", ")
                ),
            ),
        );
    }

    // Every index entry is an accepted, unexpired task (which the loop above placed).
    for ((q, s), ids) in &obs.index {
        for id in ids {
            match w.tasks.get(id) {
                None => flags.push((
                    ONE_INDEX,
                    format!("idx:{s} of {q} holds {id}, which no submit accepted"),
                )),
                Some(t) if t.expired => flags.push((
                    ONE_INDEX,
                    format!("{id} expired but is still in idx:{s} of {q}"),
                )),
                _ => {}
            }
        }
    }
    for (q, ids) in &obs.live {
        for id in ids {
            if w.tasks.get(id).is_none_or(|t| t.expired) {
                flags.push((
                    ONE_INDEX,
                    format!("queue {q}'s index holds {id}, which is expired or was never accepted"),
                ));
            }
        }
    }
    // Concurrency keys: the running records of the keyed queue, counted per key.
    let mut per_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for id in &obs.index[&(KEYED_QUEUE.to_owned(), "running".to_owned())] {
        if let Some(k) = obs
            .records
            .get(id)
            .and_then(|r| r.fields.get("concurrency_key"))
        {
            per_key.entry(k).or_default().push(id);
        }
    }
    // A key's running set holds exactly its running tasks: an entry left by a task that
    // left `running` would hold the key for good.
    for (k, held) in &obs.holding {
        let running: BTreeSet<String> = per_key
            .get(k.as_str())
            .map(|v| v.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        if *held != running {
            flags.push((
                KEY_HOLD,
                format!("key {k}'s running set holds {held:?}, its running tasks are {running:?}"),
            ));
        }
    }
    for (k, ids) in per_key {
        if ids.len() > PER_KEY as usize {
            flags.push((
                KEY_LIMIT,
                format!(
                    "{} tasks of key {k} run at once in queue {KEYED_QUEUE}: {ids:?}",
                    ids.len()
                ),
            ));
        }
    }
    for (invariant, detail) in flags {
        w.flag(invariant, detail);
    }
}

fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> String {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} -> {:?}", a.get(k), b.get(k)))
        .collect::<Vec<_>>()
        .join(", ")
}
