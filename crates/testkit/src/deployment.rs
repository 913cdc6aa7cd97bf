//! One errand deployment for a test: the settings its api and workers share, and starting
//! them so the test knows when each is up and where it listens.
//!
//! The api and a worker's metrics listener bind port 0 and the harness reads the port they
//! got from their log lines, so parallel tests never race for one.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU16, Ordering},
    time::Duration,
};

use crate::{Output, Proc, RedisServer, listening_port, metrics_addr, wait_for};

/// One errand deployment for a test: env shared by its api and workers.
#[derive(Debug)]
pub struct Errand {
    /// `ERRAND__…` settings every process of this deployment gets.
    pub env: Vec<(String, String)>,
    /// 0 until the first api of this deployment reported the port it bound; the apis
    /// started after it (a restart) bind that port again, so clients keep their URL.
    api_port: AtomicU16,
}

impl Errand {
    /// Settings pointing at `redis` under a key prefix unique to this test.
    pub fn new(redis: &RedisServer) -> Self {
        Self::at(&redis.url())
    }

    /// Settings pointing at the Redis (or `redis+cluster://` cluster) at `url`.
    pub fn at(url: &str) -> Self {
        let prefix = format!("t{}", ulid_like());
        let env = vec![
            ("ERRAND__REDIS__URL".into(), url.to_owned()),
            ("ERRAND__REDIS__KEY_PREFIX".into(), prefix),
            // Port 0: the api binds a free port and says which (see `spawn_api`).
            ("ERRAND__API__PORT".into(), "0".into()),
            ("ERRAND__WORKER__LEASE_SECS".into(), "3".into()),
            ("ERRAND__TASKS__DIAGNOSTIC_KINDS".into(), "true".into()),
            (
                "RUST_LOG".into(),
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ),
        ];
        Self {
            env,
            api_port: AtomicU16::new(0),
        }
    }

    /// One more setting for every process (e.g. `ERRAND__WORKER__LEASE_SECS`).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The port the api of this deployment listens on; known once [`Errand::spawn_api`]
    /// returned.
    pub fn api_port(&self) -> u16 {
        let port = self.api_port.load(Ordering::Relaxed);
        assert_ne!(port, 0, "no api spawned yet: call spawn_api first");
        port
    }

    /// The api's URL, once `spawn_api` has returned.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port())
    }

    /// Starts an api and waits until it answers `/healthz`. The first binds port 0 and the
    /// port comes from its `errand-api listening` log line; later ones bind that port again.
    pub async fn spawn_api(&self) -> Proc {
        self.spawn_api_keeping(None).await
    }

    /// Like [`Errand::spawn_api`], keeping the api's output for the test to read.
    pub async fn spawn_api_logged(&self) -> (Proc, Output) {
        let output = Output::default();
        (self.spawn_api_keeping(Some(output.clone())).await, output)
    }

    async fn spawn_api_keeping(&self, keep: Option<Output>) -> Proc {
        let known = self.api_port.load(Ordering::Relaxed);
        let mut env = self.env.clone();
        env.push(("ERRAND__API__PORT".into(), known.to_string()));
        if let Some(filter) = quiet_filter(&env, "errand_api") {
            env.push(("RUST_LOG".into(), filter));
        }
        let (mut p, port) = Proc::spawn_reporting("errand-api", &[], &env, listening_port, keep);
        let port = reported(&mut p, port, "errand-api listening").await;
        assert!(
            known == 0 || port == known,
            "errand-api bound {port}, not {known}"
        );
        self.api_port.store(port, Ordering::Relaxed);
        let url = format!("{}/healthz", self.base_url());
        wait_for(
            "errand-api to answer /healthz",
            Duration::from_secs(20),
            || {
                let url = url.clone();
                async move {
                    reqwest::get(&url)
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                }
            },
        )
        .await;
        p
    }

    /// Starts a worker with this deployment's settings and `args`.
    pub fn spawn_worker(&self, args: &[&str]) -> Proc {
        Proc::spawn("errand-worker", args, &self.env)
    }

    /// Like [`Errand::spawn_worker`], keeping the worker's output for the test to read.
    pub fn spawn_worker_logged(&self, args: &[&str]) -> (Proc, Output) {
        Proc::spawn_logged("errand-worker", args, &self.env)
    }

    /// Starts a worker through `wrapper` (e.g. `["ip", "netns", "exec", NS]`, which execs
    /// it inside a network namespace), with `env` added to this deployment's settings, and
    /// keeps its output; returns once it logged `worker started` (it reached Redis).
    pub async fn spawn_worker_via(
        &self,
        wrapper: &[&str],
        env: &[(&str, &str)],
        args: &[&str],
    ) -> (Proc, Output) {
        let mut all = self.env.clone();
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let out = Output::default();
        let (mut p, started) = Proc::spawn_reporting_via(
            wrapper,
            "errand-worker",
            args,
            &all,
            |l| l.contains("worker started").then_some(()),
            Some(out.clone()),
        );
        reported(&mut p, started, "worker started").await;
        (p, out)
    }

    /// Starts a worker like [`Errand::spawn_worker`] with its Prometheus listener on port 0
    /// (`worker.metrics_addr`), and returns the address it bound, read from its `serving
    /// metrics at /metrics` log line: scrape `http://{addr}/metrics`.
    pub async fn spawn_worker_with_metrics(&self, args: &[&str]) -> (Proc, SocketAddr) {
        let mut env = self.env.clone();
        env.push(("ERRAND__WORKER__METRICS_ADDR".into(), "127.0.0.1:0".into()));
        if let Some(filter) = quiet_filter(&env, "errand_worker::metrics") {
            env.push(("RUST_LOG".into(), filter));
        }
        let (mut p, addr) = Proc::spawn_reporting("errand-worker", args, &env, metrics_addr, None);
        let addr = reported(&mut p, addr, "serving metrics at /metrics").await;
        (p, addr)
    }
}

/// What `p` reported in its `line` log line (see [`Proc::spawn_reporting`]); panics if it
/// exited first or took over 20 s.
async fn reported<T>(p: &mut Proc, found: tokio::sync::oneshot::Receiver<T>, line: &str) -> T {
    match tokio::time::timeout(Duration::from_secs(20), found).await {
        Ok(Ok(found)) => found,
        Ok(Err(_)) => panic!(
            "{} exited ({:?}) before logging `{line}` (TEST_LOG=1 shows its output)",
            p.name,
            p.child.wait().await
        ),
        Err(_) => panic!("{} did not log `{line}` within 20s", p.name),
    }
}

/// `RUST_LOG` for a process whose filter is one level above `info` (a benchmark's `warn`):
/// `info` for `target` itself, where the line the harness reads is logged, and the given
/// level for everything under it, so that line still shows and nothing else does.
fn quiet_filter(env: &[(String, String)], target: &str) -> Option<String> {
    let filter = env.iter().rev().find(|(k, _)| k == "RUST_LOG")?.1.trim();
    ["warn", "error", "off"]
        .contains(&filter.to_ascii_lowercase().as_str())
        .then(|| format!("{filter},{target}=info,{target}::={filter}"))
}

fn ulid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:x}{}{}",
        t,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
