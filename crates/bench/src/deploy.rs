//! One benchmark deployment: a private redis-server, the api, and workers started on demand,
//! all with logs at `warn` so logging is not what is measured.

use std::{net::SocketAddr, time::Duration};

use chrono::{DateTime, Utc};
use errand_core::store::KindDefinition;
use errand_testkit::{Errand, Proc, RedisServer, wait_for};
use nix::sys::signal::Signal;

pub(crate) struct Deployment {
    /// Kept alive for the deployment's lifetime (killed on drop).
    _redis: RedisServer,
    pub(crate) errand: Errand,
    pub(crate) api: Proc,
    pub(crate) prefix: String,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) conn: redis::aio::MultiplexedConnection,
}

impl Deployment {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let redis = RedisServer::start().await;
        let errand = Errand::new(&redis)
            .with("RUST_LOG", "warn")
            .with("ERRAND__WORKER__LEASE_SECS", "10")
            .with("ERRAND__WORKER__BATCH_SIZE", "100");
        let prefix = errand.env[1].1.clone();
        let api = errand.spawn_api().await;
        let base = errand.base_url();
        let conn = redis.conn().await;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            _redis: redis,
            errand,
            api,
            prefix,
            base,
            http,
            conn,
        })
    }

    /// Registers `def` as a worker of its own would at start.
    pub(crate) async fn register_kind(&self, def: KindDefinition) -> anyhow::Result<()> {
        let conn = errand_core::store::connect(&errand_core::settings::RedisSettings {
            url: self._redis.url(),
            key_prefix: self.prefix.clone(),
            response_timeout_ms: 5000,
            connect_timeout_ms: 2000,
            tls_ca_file: None,
        })?;
        let store =
            errand_core::TaskStore::new(conn, errand_core::store::Layout::new(&self.prefix));
        store.register_kinds(&[def], "errand-bench", true).await?;
        Ok(())
    }

    /// A worker process serving `default` with `concurrency`.
    pub(crate) fn worker(&self, concurrency: usize) -> Proc {
        self.errand
            .spawn_worker(&["--queues", &format!("default={concurrency}")])
    }

    /// A worker like [`Deployment::worker`] with its metrics listener on a port it picked;
    /// returns the address it bound.
    pub(crate) async fn worker_with_metrics(&self, concurrency: usize) -> (Proc, SocketAddr) {
        self.errand
            .spawn_worker_with_metrics(&["--queues", &format!("default={concurrency}")])
            .await
    }

    pub(crate) async fn stop(mut p: Proc) {
        p.signal(Signal::SIGTERM);
        let _ = p.wait_exit(Duration::from_secs(30)).await;
    }

    /// Tasks of queue `default` in `state`.
    pub(crate) async fn count(&self, state: &str) -> anyhow::Result<usize> {
        self.count_in("default", state).await
    }

    /// Tasks of `queue` in `state`.
    pub(crate) async fn count_in(&self, queue: &str, state: &str) -> anyhow::Result<usize> {
        let mut c = self.conn.clone();
        Ok(redis::cmd("ZCARD")
            .arg(format!("{}:{{{queue}}}:idx:{state}", self.prefix))
            .query_async(&mut c)
            .await?)
    }

    pub(crate) async fn wait_succeeded(&self, n: usize, timeout: Duration) {
        wait_for(&format!("{n} tasks to succeed"), timeout, || async {
            (self.count("succeeded").await.ok()? >= n).then_some(())
        })
        .await;
    }

    /// Earliest `started_at` and latest `finished_at` over the succeeded tasks, read back
    /// from their records: the drain's wall time as errand itself recorded it.
    pub(crate) async fn span(&self) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
        self.span_in("default").await
    }

    /// [`Deployment::span`] over `queue`'s succeeded tasks.
    pub(crate) async fn span_in(
        &self,
        queue: &str,
    ) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{}:{{{queue}}}:idx:succeeded", self.prefix))
            .arg(0)
            .arg(-1)
            .query_async(&mut c)
            .await?;
        let mut first: Option<DateTime<Utc>> = None;
        let mut last: Option<DateTime<Utc>> = None;
        for chunk in ids.chunks(5_000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HMGET")
                    .arg(format!("{}:{{{queue}}}:task:{id}", self.prefix))
                    .arg("started_at")
                    .arg("finished_at");
            }
            let rows: Vec<(String, String)> = pipe.query_async(&mut c).await?;
            for (s, f) in rows {
                let s: DateTime<Utc> = s.parse()?;
                let f: DateTime<Utc> = f.parse()?;
                first = Some(first.map_or(s, |x| x.min(s)));
                last = Some(last.map_or(f, |x| x.max(f)));
            }
        }
        Ok((
            first.ok_or_else(|| anyhow::anyhow!("no tasks"))?,
            last.ok_or_else(|| anyhow::anyhow!("no tasks"))?,
        ))
    }

    pub(crate) async fn used_memory(&self) -> anyhow::Result<f64> {
        let mut c = self.conn.clone();
        let info: String = redis::cmd("INFO").arg("memory").query_async(&mut c).await?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no used_memory in INFO"))
    }

    /// Submits `n` tasks built by `task(i)` through the batch route, 1000 per request.
    pub(crate) async fn enqueue(
        &self,
        n: usize,
        task: impl Fn(usize) -> serde_json::Value,
    ) -> anyhow::Result<()> {
        let mut i = 0;
        while i < n {
            let end = (i + 1000).min(n);
            let tasks: Vec<_> = (i..end).map(&task).collect();
            let res = self
                .http
                .post(format!("{}/v1/tasks/batch", self.base))
                .json(&serde_json::json!({ "tasks": tasks }))
                .send()
                .await?;
            anyhow::ensure!(res.status() == 202, "batch answered {}", res.status());
            i = end;
        }
        Ok(())
    }
}

/// Peak resident set size of a process, in MB (VmHWM).
pub(crate) fn peak_rss_mb(p: &Proc) -> f64 {
    let Some(pid) = p.child.id() else {
        return f64::NAN;
    };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) a process has used so far.
pub(crate) fn cpu_secs(p: &Proc) -> f64 {
    let Some(pid) = p.child.id() else {
        return f64::NAN;
    };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

impl Deployment {
    pub(crate) fn redis_url(&self) -> String {
        self._redis.url()
    }

    /// CPU seconds redis-server has used so far.
    pub(crate) async fn redis_cpu_secs(&self) -> anyhow::Result<f64> {
        let mut c = self.conn.clone();
        let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut c).await?;
        let get = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        Ok(get("used_cpu_user:") + get("used_cpu_sys:"))
    }
}

impl Deployment {
    /// Zeroes Redis's per-command statistics (`CONFIG RESETSTAT`).
    pub(crate) async fn reset_command_stats(&self) -> anyhow::Result<()> {
        let mut c = self.conn.clone();
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// The Redis commands that took the most CPU so far: `(command, calls, usec total)`.
    pub(crate) async fn top_commands(&self, n: usize) -> anyhow::Result<Vec<(String, u64, u64)>> {
        let mut c = self.conn.clone();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await?;
        let mut rows: Vec<(String, u64, u64)> = info
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let field = |k: &str| {
                    rest.split(',')
                        .find_map(|kv| kv.strip_prefix(k))
                        .and_then(|v| v.parse::<u64>().ok())
                };
                Some((name.to_owned(), field("calls=")?, field("usec=")?))
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.2));
        rows.truncate(n);
        Ok(rows)
    }
}
