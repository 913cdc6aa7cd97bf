//! How the store calls its scripts and reads their replies. Every script is the shared
//! prelude followed by its own file; every call starts with the key prefix, whether it may
//! reach outside its slot and how long a webhook delivery is kept (ARGV[1..3], see
//! `lua/prelude.lua`), so one Rust definition,
//! [`Layout`](super::Layout), names every key; KEYS[1] routes it to its slot's node.

use redis::{Script, Value};

use super::{StoreError, TaskStore};
use crate::task::{TaskRecord, TaskState, UnknownState};

/// A store script: `lua/prelude.lua` plus `lua/<file>`, loaded once.
macro_rules! script {
    ($file:literal) => {
        std::sync::LazyLock::new(|| {
            redis::Script::new(concat!(
                include_str!("lua/prelude.lua"),
                "\n",
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}
pub(super) use script;

impl TaskStore {
    /// An invocation of `script` in the slot of key `route` (KEYS[1]), with the layout
    /// head already in its arguments.
    pub(super) fn invoke<'a>(
        &self,
        script: &'a Script,
        route: &str,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.key(route);
        for a in self.layout.script_head(!self.is_cluster()) {
            inv.arg(a);
        }
        inv.arg(self.retention.webhooks.as_millis() as u64);
        inv
    }

    /// An invocation of `script` in `queue`'s slot.
    pub(super) fn invoke_in<'a>(
        &self,
        script: &'a Script,
        queue: &str,
    ) -> redis::ScriptInvocation<'a> {
        self.invoke(script, &self.layout.ready_list(queue))
    }

    /// Runs `inv` on the shared connection.
    pub(super) async fn run<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut c = self.conn.clone();
        Ok(inv.invoke_async(&mut c).await?)
    }
}

/// Indexes of `items` grouped by queue, in first-seen order: a batch of worker reports
/// becomes one script call per queue (a queue's keys share one hash slot).
pub(super) fn by_queue<'a, T>(
    items: &'a [T],
    queue: impl Fn(&'a T) -> &'a str,
) -> Vec<(&'a str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let q = queue(item);
        match groups.iter_mut().find(|(g, _)| *g == q) {
            Some((_, v)) => v.push(n),
            None => groups.push((q, vec![n])),
        }
    }
    groups
}

/// Puts per-group answers back in the order of the items they answer.
pub(super) fn reassemble<R: Clone>(
    len: usize,
    groups: &[(&str, Vec<usize>)],
    answers: Vec<Vec<R>>,
    script: &str,
) -> Result<Vec<R>, StoreError> {
    let mut out: Vec<Option<R>> = vec![None; len];
    for ((_, idx), got) in groups.iter().zip(answers) {
        if got.len() != idx.len() {
            return Err(StoreError::Protocol(format!(
                "{script} answered {} of {}",
                got.len(),
                idx.len()
            )));
        }
        for (&n, r) in idx.iter().zip(got) {
            out[n] = Some(r);
        }
    }
    out.into_iter()
        .map(|r| {
            r.ok_or_else(|| StoreError::Protocol(format!("{script}: an item went unanswered")))
        })
        .collect()
}

/// The one decoder of `{verdict, rest...}` replies (cancel, retry): the verdict names what
/// the script did, and what follows is a record, a state, or nothing.
pub(super) struct Verdict {
    pub name: String,
    rest: Option<Value>,
    script: &'static str,
}

impl Verdict {
    pub(crate) fn decode(script: &'static str, reply: Vec<Value>) -> Result<Self, StoreError> {
        let mut it = reply.into_iter();
        let name = it
            .next()
            .map(redis::from_redis_value::<String>)
            .transpose()?
            .ok_or_else(|| StoreError::Protocol(format!("{script}: empty reply")))?;
        Ok(Self {
            name,
            rest: it.next(),
            script,
        })
    }

    /// The record the verdict carries (an HGETALL).
    pub(crate) fn record(self) -> Result<TaskRecord, StoreError> {
        let v = self.rest.ok_or_else(|| {
            StoreError::Protocol(format!("{}: `{}` without a record", self.script, self.name))
        })?;
        Ok(TaskRecord::from_hash(redis::from_redis_value(v)?)?)
    }

    /// The state the verdict carries.
    pub(crate) fn state(self) -> Result<TaskState, StoreError> {
        let v = self.rest.ok_or_else(|| {
            StoreError::Protocol(format!("{}: `{}` without a state", self.script, self.name))
        })?;
        let s: String = redis::from_redis_value(v)?;
        s.parse()
            .map_err(|e: UnknownState| StoreError::Protocol(e.to_string()))
    }

    /// The error for a verdict the caller does not know.
    pub(crate) fn unknown(&self) -> StoreError {
        StoreError::Protocol(format!("{}: verdict `{}`", self.script, self.name))
    }
}
