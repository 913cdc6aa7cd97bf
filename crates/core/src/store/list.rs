//! The task list (`list.lua`): newest first, filtered, paged by an opaque cursor, with a
//! bound on the entries one call examines.

use super::{StoreError, TaskStore, script::script};
use crate::task::{TaskId, TaskRecord, TaskState};

static LIST: std::sync::LazyLock<redis::Script> = script!("list.lua");

impl TaskStore {
    /// One page, newest first. Without a queue filter every queue is listed (a queue's
    /// keys share one slot, so one page call per queue) and the pages are merged here.
    pub async fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        let queues = match &q.queue {
            Some(queue) => vec![queue.clone()],
            None => self.queue_names().await?,
        };
        let pages =
            futures::future::try_join_all(queues.iter().map(|queue| self.list_in(queue, q)))
                .await?;
        Ok(merge(pages, q.limit.max(1)))
    }

    async fn list_in(&self, queue: &str, q: &ListQuery) -> Result<QueuePage, StoreError> {
        let mut inv = self.invoke_in(&LIST, queue);
        inv.arg(q.state.map(|s| s.as_str()).unwrap_or_default())
            .arg(queue)
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
        let mut tasks = Vec::new();
        while let Some(score) = it.next() {
            let score: String = redis::from_redis_value(score)?;
            let h = it
                .next()
                .ok_or_else(|| StoreError::Protocol("list: a score without its record".into()))?;
            let t = TaskRecord::from_hash(redis::from_redis_value(h)?)?;
            let at = Cursor {
                score: score
                    .parse::<f64>()
                    .map_err(|_| StoreError::Protocol(format!("list: score `{score}`")))?
                    as i64,
                id: t.id.to_string(),
            };
            tasks.push((at, t));
        }
        let next = match score.parse::<i64>() {
            Ok(score) if !id.is_empty() => Some(Cursor { score, id }),
            _ => None,
        };
        Ok(QueuePage { tasks, next })
    }
}

/// One queue's page, each task with its place in the listing.
struct QueuePage {
    tasks: Vec<(Cursor, TaskRecord)>,
    next: Option<Cursor>,
}

/// Merges per-queue pages into one. A queue's page that has a cursor has looked at
/// everything above it and nothing below, so the merged page stops at the highest such
/// cursor: a task below it could be preceded by one that queue has not looked at yet.
fn merge(pages: Vec<QueuePage>, limit: usize) -> ListPage {
    let frontier = pages
        .iter()
        .filter_map(|p| p.next.clone())
        .max_by(|a, b| a.key().cmp(&b.key()));
    let mut all: Vec<(Cursor, TaskRecord)> = pages
        .into_iter()
        .flat_map(|p| p.tasks)
        .filter(|(c, _)| frontier.as_ref().is_none_or(|f| c.key() >= f.key()))
        .collect();
    all.sort_by(|a, b| b.0.key().cmp(&a.0.key()));
    let more = all.len() > limit;
    all.truncate(limit);
    let next = if more || all.len() == limit {
        all.last().map(|(c, _)| c.clone()).or(frontier)
    } else {
        frontier
    };
    ListPage {
        tasks: all.into_iter().map(|(_, t)| t).collect(),
        next,
    }
}

/// Where a listing page ended: the last entry's index score and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The index score (creation time in ms, or the state change's).
    pub score: i64,
    /// The last listed task, breaking ties between equal scores.
    pub id: String,
}

impl Cursor {
    /// Order of the listing: by score, then id (both descending on a page).
    fn key(&self) -> (i64, &str) {
        (self.score, self.id.as_str())
    }

    /// Opaque text form for clients: `<score>:<id>` (scores never contain `:`).
    pub fn encode(&self) -> String {
        format!("{}:{}", self.score, self.id)
    }

    /// Parses a client's `after`; `None` for anything `encode` did not make.
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

/// What `GET /v1/tasks` asks for, validated by the api.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// Only this queue (one slot; otherwise every queue's page is merged).
    pub queue: Option<String>,
    /// Only this kind (filtered while scanning, within `budget`).
    pub kind: Option<String>,
    /// Continue after this cursor; `None`: the newest first.
    pub after: Option<Cursor>,
    /// Most tasks on the page.
    pub limit: usize,
    /// Most index entries one call may examine.
    pub budget: usize,
}

/// One page of a listing, newest first.
#[derive(Debug)]
pub struct ListPage {
    /// The page's records.
    pub tasks: Vec<TaskRecord>,
    /// Pass back as `after` for the next page; `None` on the last one.
    pub next: Option<Cursor>,
}
