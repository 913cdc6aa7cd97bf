//! The backend alone: raw apalis-redis 1.0 draining no-op jobs, with the settings errand
//! uses (task locking off, batches of 100, concurrency 100) and no errand record. Jobs are
//! written straight onto the active list in apalis-redis's own layout, as errand's submit
//! does, because a backlog pushed through apalis's scheduled set breaks its fetch past ~8k
//! jobs (defect 1). Run in this process against the deployment's Redis.

use std::time::{Duration, Instant};

use apalis::layers::WorkerBuilderExt;
use apalis_core::{error::BoxDynError, worker::builder::WorkerBuilder};
use apalis_redis::{Config, RedisStorage};
use errand_testkit::wait_for;
use tokio_util::sync::CancellationToken;

const FILL: &str = r"
for i = 2, #ARGV do
  local jid = ARGV[i]
  redis.call('HSET', KEYS[1], jid, '{}')
  redis.call('HSET', KEYS[2] .. ':' .. jid, 'attempts', 0, 'max_attempts', 1, 'status', 'Pending')
  redis.call('RPUSH', KEYS[3], jid)
end
return #ARGV - 1
";

async fn noop(_job: serde_json::Value) -> Result<(), BoxDynError> {
    Ok(())
}

/// Drains `n` no-op jobs with one in-process apalis worker; returns jobs/s.
pub(crate) async fn drain(url: &str, n: usize) -> anyhow::Result<f64> {
    let client = redis::Client::open(url)?;
    let conn = redis::aio::ConnectionManager::new(client.clone()).await?;
    let config = Config::default()
        .queue("raw-bench")
        .lock_tasks(false)
        .batch_size(100)
        .emit_events(false);
    let mut c = conn.clone();
    let script = redis::Script::new(FILL);
    let mut i = 0;
    while i < n {
        let end = (i + 1000).min(n);
        let mut inv = script.prepare_invoke();
        inv.key(config.job_data_hash())
            .key(config.job_meta_hash())
            .key(config.active_jobs_list())
            .arg("fill");
        for _ in i..end {
            inv.arg(ulid::Ulid::generate().to_string());
        }
        let _: i64 = inv.invoke_async(&mut c).await?;
        i = end;
    }
    let done_set = config.done_jobs_set();
    let storage = RedisStorage::<serde_json::Value>::new(conn.clone()).with_config(config);
    let worker = WorkerBuilder::new(format!("raw-{}", ulid::Ulid::generate().to_string()))
        .backend(storage)
        .concurrency(100)
        .build(noop);
    let stop = CancellationToken::new();
    let s = stop.clone();
    let t = Instant::now();
    let handle = tokio::spawn(async move {
        worker
            .run_until(async move {
                s.cancelled().await;
                Ok::<(), std::io::Error>(())
            })
            .await
    });
    wait_for("raw apalis to drain", Duration::from_secs(300), || {
        let mut c = conn.clone();
        let key = done_set.clone();
        async move {
            let done: usize = redis::cmd("SCARD")
                .arg(key)
                .query_async(&mut c)
                .await
                .ok()?;
            (done >= n).then_some(())
        }
    })
    .await;
    let secs = t.elapsed().as_secs_f64();
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    Ok(n as f64 / secs)
}
