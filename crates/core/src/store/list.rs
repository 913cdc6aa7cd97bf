//! The task list (`list.lua`): newest first, filtered, paged by an opaque cursor, with a
//! bound on the entries one call examines.

use super::{StoreError, TaskStore, script::script};
use crate::task::{TaskId, TaskRecord, TaskState};

static LIST: std::sync::LazyLock<redis::Script> = script!("list.lua");

impl TaskStore {
    /// One page of the task list; see `lua/list.lua` for the ordering and cost bound.
    pub async fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        let mut inv = self.invoke(&LIST);
        inv.arg(q.state.map(|s| s.as_str()).unwrap_or_default())
            .arg(q.queue.as_deref().unwrap_or_default())
            .arg(q.kind.as_deref().unwrap_or_default())
            .arg(
                q.after
                    .as_ref()
                    .map(|c| c.score.to_string())
                    .unwrap_or_default(),
            )
            .arg(q.after.as_ref().map(|c| c.id.as_str()).unwrap_or_default())
            .arg(q.limit.max(1))
            .arg(q.budget.max(q.limit).max(1));
        let reply: Vec<redis::Value> = self.run(&inv).await?;
        let mut it = reply.into_iter();
        let score: String = it
            .next()
            .map(redis::from_redis_value)
            .transpose()?
            .unwrap_or_default();
        let id: String = it
            .next()
            .map(redis::from_redis_value)
            .transpose()?
            .unwrap_or_default();
        let tasks = it
            .map(|v| Ok(TaskRecord::from_hash(redis::from_redis_value(v)?)?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = match score.parse::<i64>() {
            Ok(score) if !id.is_empty() => Some(Cursor { score, id }),
            _ => None,
        };
        Ok(ListPage { tasks, next })
    }
}

/// Where a listing page ends: the index score and id of the last entry examined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub score: i64,
    pub id: String,
}

impl Cursor {
    /// Opaque text form for clients: `<score>:<id>` (scores never contain `:`).
    pub fn encode(&self) -> String {
        format!("{}:{}", self.score, self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (score, id) = s.split_once(':')?;
        let score = score.parse().ok()?;
        TaskId::parse(id).ok()?;
        Some(Self {
            score,
            id: id.to_owned(),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub state: Option<TaskState>,
    pub queue: Option<String>,
    pub kind: Option<String>,
    pub after: Option<Cursor>,
    pub limit: usize,
    /// Most index entries one call may examine.
    pub budget: usize,
}

#[derive(Debug)]
pub struct ListPage {
    pub tasks: Vec<TaskRecord>,
    pub next: Option<Cursor>,
}
