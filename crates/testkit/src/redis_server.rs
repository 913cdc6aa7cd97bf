//! A private `redis-server` for one test: on a free port in a temp dir, optionally with
//! AOF, a password or TLS, and the faults tests inject into it (freeze, kill, restart).
//!
//! redis-server cannot report a port it picked, so its port is probed, and the start is
//! tried again on another port when the probed one was taken in the meantime.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::process::{Child, Command};

use crate::{Tls, free_port, resp};

/// A private redis-server, killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    appendonly: bool,
    /// Extra `redis-server` arguments, kept across restarts.
    args: Vec<String>,
    /// `--requirepass`, so the harness's own connections can log in.
    password: Option<String>,
    tls: Option<Tls>,
}

impl RedisServer {
    /// A plain server, no persistence.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// With `appendonly`, data survives a restart (as with the docker-compose Redis).
    pub async fn start_with(appendonly: bool) -> Self {
        let mut s = Self::unstarted(&[]);
        s.appendonly = appendonly;
        s.spawn_fresh().await;
        s
    }

    /// With extra arguments, e.g. `["--requirepass", "pw"]` (which the harness then uses).
    pub async fn start_args(args: &[&str]) -> Self {
        let mut s = Self::unstarted(args);
        s.spawn_fresh().await;
        s
    }

    fn unstarted(args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let password = args
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| args.get(i + 1).cloned());
        Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            appendonly: false,
            args,
            password,
            tls: None,
        }
    }

    /// TLS only (`--port 0 --tls-port …`), with a certificate from a CA made for this
    /// server: connect with `rediss://` trusting [`Tls::ca_file`].
    #[cfg(feature = "client")]
    pub async fn start_tls(args: &[&str]) -> Self {
        let mut s = Self::unstarted(args);
        let (tls, tls_args) = Tls::issue(s.dir.path());
        s.args.extend(tls_args);
        s.tls = Some(tls);
        let _ = rustls::crypto::ring::default_provider().install_default();
        s.spawn_fresh().await;
        s
    }

    /// Starts the server on its port. On the first start (`fresh`), a port taken since it
    /// was probed is replaced by another probe, a few times.
    async fn spawn(&mut self, wait_ready: bool) {
        self.spawn_on_port(wait_ready, false).await;
    }

    async fn spawn_fresh(&mut self) {
        self.spawn_on_port(true, true).await;
    }

    async fn spawn_on_port(&mut self, wait_ready: bool, fresh: bool) {
        for attempt in 1.. {
            let mut child = self.spawn_child();
            match self.wait_started(&mut child, wait_ready).await {
                Ok(()) => {
                    self.child = Some(child);
                    return;
                }
                Err(status) if fresh && attempt < 5 => {
                    eprintln!(
                        "redis-server on port {} exited ({status}), most likely the port was \
                         taken since it was probed; trying another",
                        self.port
                    );
                    self.port = free_port();
                }
                Err(status) => panic!(
                    "redis-server on port {} exited at start ({status})",
                    self.port
                ),
            }
        }
    }

    fn spawn_child(&self) -> Child {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = self.port.to_string();
        let (plain_port, tls_port) = if self.tls.is_some() {
            ("0", Some(port.as_str()))
        } else {
            (port.as_str(), None)
        };
        Command::new(&bin)
            .args(["--port", plain_port, "--bind", "127.0.0.1", "--save", ""])
            .args(tls_port.iter().flat_map(|p| ["--tls-port", p]))
            .args([
                "--appendonly",
                if self.appendonly { "yes" } else { "no" },
                "--appendfsync",
                "always",
            ])
            // DEBUG SLEEP lets a test make Redis slow on demand (Redis 7 refuses DEBUG unless
            // enabled; `local` keeps it to loopback clients).
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{bin}` ({e}); install redis-server (`just up` does)")
            })
    }

    /// The port it listens on (stable across `restart`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:port`, or `rediss://…` for a TLS server; no credentials.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA of a `start_tls` server.
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    async fn wait_started(
        &self,
        child: &mut Child,
        wait_ready: bool,
    ) -> Result<(), std::process::ExitStatus> {
        #[cfg(feature = "client")]
        if self.tls.is_some() {
            return wait_own_tls_redis(child, &self.client(), wait_ready).await;
        }
        wait_own_redis(child, self.port, self.password.as_deref(), wait_ready).await
    }

    /// A client for the harness itself: the password and the test CA included.
    #[cfg(feature = "client")]
    pub fn client(&self) -> redis::Client {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let auth = self
            .password
            .as_ref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        let url = format!("{scheme}://{auth}127.0.0.1:{}", self.port);
        match &self.tls {
            Some(t) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(t.ca_pem.clone()),
                },
            ),
            None => redis::Client::open(url),
        }
        .expect("redis client")
    }

    /// A connection of the test's own, to look at or change keys directly.
    #[cfg(feature = "client")]
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }

    /// Freezes the server (SIGSTOP): connections stay open and calls get no reply, as with
    /// a Redis that hangs or a network that drops packets. [`RedisServer::resume`] thaws it.
    pub fn pause(&self) {
        self.send(Signal::SIGSTOP);
    }

    /// Thaws a server [`RedisServer::pause`] froze (SIGCONT).
    pub fn resume(&self) {
        self.send(Signal::SIGCONT);
    }

    fn send(&self, sig: Signal) {
        let pid = self
            .child
            .as_ref()
            .and_then(|c| c.id())
            .expect("redis-server running");
        nix::sys::signal::kill(Pid::from_raw(pid as i32), sig).expect("signal redis-server");
    }

    /// Stops the server (SIGKILL); keeps its data directory.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Starts it again on the same port and directory.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn(true).await;
    }

    /// Starts it again with `extra` arguments for this start only, returning as soon as it
    /// answers at all (a `LOADING` reply included).
    pub async fn restart_loading(&mut self, extra: &[&str]) {
        self.kill().await;
        let kept = self.args.clone();
        self.args.extend(extra.iter().map(|a| a.to_string()));
        self.spawn(false).await;
        self.args = kept;
    }
}

/// Waits until `child` answers on `port`, or returns its exit status if it exits first.
/// The answer must come from `child` itself (`INFO`'s `process_id`): on a port taken since
/// it was probed, another test's server would answer PING. Spoken in plain RESP over TCP,
/// so the harness needs no Redis client of its own (the `client` feature adds one, which
/// TLS servers are probed with).
pub(crate) async fn wait_own_redis(
    child: &mut Child,
    port: u16,
    password: Option<&str>,
    wait_ready: bool,
) -> Result<(), std::process::ExitStatus> {
    let pid = child.id().expect("just spawned");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Err(status);
        }
        match resp::probe(port, password, pid).await {
            Some(resp::Probe::Ready) => return Ok(()),
            // Up, but still loading: what a test restarting it slowly wants.
            Some(resp::Probe::Loading) if !wait_ready => return Ok(()),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 10s waiting for redis-server (pid {pid}) to answer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`wait_own_redis`] for a TLS server, through the Redis client (plain RESP cannot reach it).
#[cfg(feature = "client")]
async fn wait_own_tls_redis(
    child: &mut Child,
    client: &redis::Client,
    wait_ready: bool,
) -> Result<(), std::process::ExitStatus> {
    let pid = child.id().expect("just spawned");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Err(status);
        }
        if let Ok(mut c) = client.get_multiplexed_async_connection().await {
            let info = redis::cmd("INFO")
                .arg("server")
                .query_async::<String>(&mut c)
                .await;
            let own = match &info {
                Ok(info) => info.contains(&format!("process_id:{pid}\r\n")),
                Err(e) => e.code() == Some("LOADING"),
            };
            if own {
                match redis::cmd("PING").query_async::<String>(&mut c).await {
                    Ok(_) => return Ok(()),
                    Err(e) if !wait_ready && e.code() == Some("LOADING") => return Ok(()),
                    Err(_) => {}
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 10s waiting for redis-server (pid {pid}) to answer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
