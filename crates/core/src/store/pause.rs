//! Pausing a queue (`pause.lua`): an operator's brake. While a queue is paused its workers'
//! fetches hand out nothing (one EXISTS in `fetch.lua`), so they stop taking its tasks at
//! their next fetch; attempts already running finish, and submits are still accepted and
//! wait. Resume publishes the queue's wake-up, so idle workers fetch at once instead of at
//! their fallback tick.

use chrono::{DateTime, TimeZone, Utc};

use super::{StoreError, TaskStore, script::script};

static PAUSE: std::sync::LazyLock<redis::Script> = script!("pause.lua");

impl TaskStore {
    /// Pauses `queue` (a no-op when it already is); returns when it was first paused.
    pub async fn pause_queue(&self, queue: &str) -> Result<DateTime<Utc>, StoreError> {
        if self.is_cluster() {
            // The queue set lives outside the queue's slot.
            self.register(&[queue]).await?;
        }
        let mut inv = self.invoke_in(&PAUSE, queue);
        inv.arg(queue).arg("pause");
        let at: String = self.run(&inv).await?;
        parse_ms(&at).ok_or_else(|| StoreError::Protocol(format!("pause: reply `{at}`")))
    }

    /// Resumes `queue` and wakes its workers (a no-op when it is not paused).
    pub async fn resume_queue(&self, queue: &str) -> Result<(), StoreError> {
        let mut inv = self.invoke_in(&PAUSE, queue);
        inv.arg(queue).arg("resume");
        let _: String = self.run(&inv).await?;
        Ok(())
    }

    /// For each of `queues`, when it was paused, or `None` if it is not.
    pub async fn paused(
        &self,
        queues: &[String],
    ) -> Result<Vec<Option<DateTime<Utc>>>, StoreError> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        // One GET per queue: each flag lives in its queue's slot.
        let at: Vec<Option<String>> = futures::future::try_join_all(queues.iter().map(|q| {
            let mut c = self.conn.clone();
            let key = self.layout.paused(q);
            async move { redis::cmd("GET").arg(key).query_async(&mut c).await }
        }))
        .await?;
        Ok(at
            .into_iter()
            .map(|a| a.as_deref().and_then(parse_ms))
            .collect())
    }
}

fn parse_ms(s: &str) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(s.parse().ok()?).single()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::super::{Layout, NewTask};
    use super::*;
    use crate::task::TaskId;

    pub(crate) async fn store(redis: &errand_testkit::RedisServer) -> TaskStore {
        let conn = redis.client().get_connection_manager().await.unwrap();
        TaskStore::new(super::super::Conn::Single(conn), Layout::new("p"))
    }

    pub(crate) fn task(queue: &str) -> NewTask {
        NewTask {
            id: TaskId::generate(),
            kind: "sleep".into(),
            queue: queue.into(),
            payload: json!({"duration_secs": 0}),
            max_attempts: 1,
            timeout_secs: None,
            result_ttl_secs: 600,
            run_at: None,
            traceparent: None,
            unique: None,
            flow: Default::default(),
            step: None,
            callback: None,
        }
    }

    #[tokio::test]
    async fn a_paused_queue_hands_out_nothing_until_resumed_and_resume_wakes_it() {
        let redis = errand_testkit::RedisServer::start().await;
        let s = store(&redis).await;
        let now = Utc::now();
        s.submit(task("a"), now).await.unwrap();
        s.submit(task("b"), now).await.unwrap();
        let first = s.pause_queue("a").await.unwrap();
        assert_eq!(
            s.pause_queue("a").await.unwrap(),
            first,
            "a repeat keeps the first time"
        );
        assert!(s.paused(&["a".into(), "b".into()]).await.unwrap()[0].is_some());
        let lease = Duration::from_secs(5);
        let got = s.fetch("a", 10, "w", lease, "t1", now).await.unwrap();
        assert!(got.claimed.is_empty(), "paused: {got:?}");
        let other = s.fetch("b", 10, "w", lease, "t2", now).await.unwrap();
        assert_eq!(other.claimed.len(), 1, "other queues are not held");

        let mut sub = redis.client().get_async_pubsub().await.unwrap();
        sub.subscribe(s.layout().wake_channel("a")).await.unwrap();
        s.resume_queue("a").await.unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(5), futures_next(&mut sub)).await;
        assert!(woke.is_ok(), "resume publishes the queue's wake-up");
        assert_eq!(s.paused(&["a".into()]).await.unwrap(), vec![None]);
        let got = s.fetch("a", 10, "w", lease, "t3", now).await.unwrap();
        assert_eq!(
            got.claimed.len(),
            1,
            "the waiting task is handed out after resume"
        );
    }

    async fn futures_next(sub: &mut redis::aio::PubSub) -> Option<redis::Msg> {
        use futures::StreamExt;
        sub.on_message().next().await
    }
}
