//! How the store calls its scripts and reads their replies. Every script is the shared
//! prelude followed by its own file; every call starts with the key layout (ARGV[1..8], see
//! `lua/prelude.lua`), so one Rust definition, [`Layout`](super::Layout), names every key.

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
    /// An invocation of `script` with the key layout already in its arguments.
    pub(super) fn invoke<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for a in self.layout.script_head() {
            inv.arg(a);
        }
        inv
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

/// The one decoder of `{verdict, rest...}` replies (cancel, retry): the verdict names what
/// the script did, and what follows is a record, a state, or nothing.
pub(super) struct Verdict {
    pub name: String,
    rest: Option<Value>,
    script: &'static str,
}

impl Verdict {
    pub fn decode(script: &'static str, reply: Vec<Value>) -> Result<Self, StoreError> {
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
    pub fn record(self) -> Result<TaskRecord, StoreError> {
        let v = self.rest.ok_or_else(|| {
            StoreError::Protocol(format!("{}: `{}` without a record", self.script, self.name))
        })?;
        Ok(TaskRecord::from_hash(redis::from_redis_value(v)?)?)
    }

    /// The state the verdict carries.
    pub fn state(self) -> Result<TaskState, StoreError> {
        let v = self.rest.ok_or_else(|| {
            StoreError::Protocol(format!("{}: `{}` without a state", self.script, self.name))
        })?;
        let s: String = redis::from_redis_value(v)?;
        s.parse()
            .map_err(|e: UnknownState| StoreError::Protocol(e.to_string()))
    }

    /// The error for a verdict the caller does not know.
    pub fn unknown(&self) -> StoreError {
        StoreError::Protocol(format!("{}: verdict `{}`", self.script, self.name))
    }
}
