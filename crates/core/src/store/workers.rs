//! The worker registry: each worker process's heartbeat, for `GET /v1/workers`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{StoreError, TaskStore};

impl TaskStore {
    /// Records that worker process `w` is alive; the entry lapses unless renewed within `ttl`.
    pub async fn heartbeat(&self, w: &WorkerInfo, ttl: Duration) -> Result<(), StoreError> {
        let key = self.layout.worker(&w.name);
        let mut c = self.conn.clone();
        redis::pipe()
            .cmd("HSET")
            .arg(&key)
            .arg("info")
            .arg(serde_json::to_string(w)?)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl.as_millis() as u64)
            .ignore()
            .cmd("ZADD")
            .arg(self.layout.workers())
            .arg(w.last_seen.timestamp_millis())
            .arg(&w.name)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(self.layout.workers())
            .arg("-inf")
            .arg((w.last_seen - ttl * 10).timestamp_millis())
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Removes worker `name` at once (a clean shutdown).
    pub async fn worker_gone(&self, name: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::pipe()
            .cmd("DEL")
            .arg(self.layout.worker(name))
            .ignore()
            .cmd("ZREM")
            .arg(self.layout.workers())
            .arg(name)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Worker process `name` while its heartbeat is alive.
    pub async fn worker(&self, name: &str) -> Result<Option<WorkerInfo>, StoreError> {
        let mut c = self.conn.clone();
        let info: Option<String> = redis::cmd("HGET")
            .arg(self.layout.worker(name))
            .arg("info")
            .query_async(&mut c)
            .await?;
        Ok(info.and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Worker processes whose heartbeat is still alive.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        let mut c = self.conn.clone();
        let names: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.layout.workers())
            .arg(0)
            .arg(999)
            .query_async(&mut c)
            .await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for n in &names {
            pipe.cmd("HGET").arg(self.layout.worker(n)).arg("info");
        }
        let infos: Vec<Option<String>> = pipe.query_async(&mut c).await?;
        Ok(infos
            .into_iter()
            .flatten()
            .filter_map(|s| serde_json::from_str(&s).ok())
            .collect())
    }
}

/// A worker process as its heartbeat describes it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WorkerInfo {
    /// Unique per process start: host, pid, ULID.
    pub name: String,
    /// The host name the process reported.
    pub host: String,
    /// The process id on that host.
    pub pid: u32,
    /// Served queues with their concurrency.
    pub queues: Vec<WorkerQueue>,
    /// Tasks running now.
    pub running: usize,
    /// Up to 100 of the running task ids.
    pub running_ids: Vec<String>,
    /// True once the process is shutting down: it takes no new tasks and finishes its own.
    #[serde(default)]
    pub stopping: bool,
    /// When the process started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat; a worker silent for long is dropped from the registry.
    pub last_seen: DateTime<Utc>,
    /// The kinds it runs, each with the digest of the definition it registered.
    #[serde(default)]
    pub kinds: Vec<super::WorkerKind>,
}

/// One queue a worker serves.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WorkerQueue {
    /// The queue's name.
    pub name: String,
    /// Most of its tasks the worker runs at once.
    pub concurrency: usize,
}
