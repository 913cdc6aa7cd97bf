//! Test-only harness: a real `redis-server` on a free port in a temp dir, the real errand
//! binaries as child processes, and waiting on conditions with deadlines (never fixed
//! sleeps).
//!
//! Ports: the api and a worker's metrics listener bind port 0 and the harness reads the
//! port they got from their log lines, so parallel tests never race for one. redis-server cannot report a port it picked, so its
//! port is probed, and the start is tried again on another port when the probed one was
//! taken in the meantime.

use std::{
    io::{BufRead, Write},
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::process::{Child, Command};

pub mod cluster;
pub mod smtp;

/// A port nobody is listening on right now: for an address that must refuse connections,
/// or for a server that cannot bind port 0 and report it (then start it with a retry, as
/// [`RedisServer`] does). Anything else binds port 0.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `check` until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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

/// A test certificate authority and the server certificate it signed (for 127.0.0.1 and
/// localhost), as PEM files in the server's directory.
#[derive(Debug)]
pub struct Tls {
    /// The CA certificate, for `redis.tls_ca_file`.
    pub ca_file: PathBuf,
    /// The same certificate, for clients built in the test.
    pub ca_pem: Vec<u8>,
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
    pub async fn start_tls(args: &[&str]) -> Self {
        let mut s = Self::unstarted(args);
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "errand test CA");
        let ca = ca_params.self_signed(&ca_key).expect("self-signed ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("server key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params");
        let cert = params.signed_by(&key, &issuer).expect("server cert");
        let d = s.dir.path().to_owned();
        let write = |name: &str, pem: String| {
            let p = d.join(name);
            std::fs::write(&p, pem).expect("write pem");
            p.to_string_lossy().into_owned()
        };
        let ca_file = write("ca.pem", ca.pem());
        let cert_file = write("server.pem", cert.pem());
        let key_file = write("server.key", key.serialize_pem());
        s.args.extend(
            [
                "--tls-cert-file",
                &cert_file,
                "--tls-key-file",
                &key_file,
                "--tls-ca-cert-file",
                &ca_file,
                "--tls-auth-clients",
                "no",
            ]
            .map(String::from),
        );
        s.tls = Some(Tls {
            ca_pem: ca.pem().into_bytes(),
            ca_file: ca_file.into(),
        });
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
            match wait_own_redis(&mut child, &self.client(), wait_ready).await {
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

    /// A client for the harness itself: the password and the test CA included.
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

/// Waits until `child` answers on `client`'s port, or returns its exit status if it exits
/// first. The answer must come from `child` itself (`INFO`'s `process_id`): on a port taken
/// since it was probed, another test's server would answer PING.
pub(crate) async fn wait_own_redis(
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
                // Still loading, so freshly started: ours, as `child` is alive.
                Err(e) => e.code() == Some("LOADING"),
            };
            if own {
                match redis::cmd("PING").query_async::<String>(&mut c).await {
                    Ok(_) => return Ok(()),
                    // Up, but still loading: what a test restarting it slowly wants.
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

/// Where cargo put the workspace's binaries: beside the running executable (a binary such
/// as the benchmark) or beside its `deps/` directory (a test).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let here = exe.parent().expect("exe dir");
    let p = if here.join(name).exists() {
        here.join(name)
    } else {
        here.parent().expect("target dir").join(name)
    };
    assert!(
        p.exists(),
        "{} not built: run `cargo build --bins` first (`just test` does)",
        p.display()
    );
    p
}

/// A running errand binary.
#[derive(Debug)]
pub struct Proc {
    /// The process, killed on drop.
    pub child: Child,
    /// The binary's name, for messages.
    pub name: String,
}

impl Proc {
    /// Spawns `bin` with `env`. Logs go to the test's output only when `TEST_LOG` is set.
    pub fn spawn(bin: &str, args: &[&str], env: &[(String, String)]) -> Self {
        let mut cmd = Self::command(bin, args, env);
        if std::env::var_os("TEST_LOG").is_none() {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        Self {
            child,
            name: bin.to_owned(),
        }
    }

    /// Like [`Proc::spawn`], keeping everything the process prints (stdout and stderr, in
    /// order) for the test to read: what a test of its log (a panic, a warning) needs.
    pub fn spawn_logged(bin: &str, args: &[&str], env: &[(String, String)]) -> (Self, Output) {
        let output = Output::default();
        let (p, _) = Self::spawn_reporting(bin, args, env, |_| None::<()>, Some(output.clone()));
        (p, output)
    }

    /// Like [`Proc::spawn`], and sends the first value `found_in` finds in a line of the
    /// process's output (stdout and stderr), such as the port it bound. A thread reads the
    /// output for the process's whole life, so the process never blocks on a full pipe; the
    /// receiver errs if the process closes its output (exits) without such a line. Every
    /// line also goes to `keep`, when given.
    fn spawn_reporting<T: Send + 'static>(
        bin: &str,
        args: &[&str],
        env: &[(String, String)],
        found_in: fn(&str) -> Option<T>,
        keep: Option<Output>,
    ) -> (Self, tokio::sync::oneshot::Receiver<T>) {
        Self::spawn_reporting_via(&[], bin, args, env, found_in, keep)
    }

    /// [`Proc::spawn_reporting`] with the command prefixed by `wrapper` (e.g. `ip netns exec
    /// NS`), and every output line also kept in `keep` when given.
    fn spawn_reporting_via<T: Send + 'static>(
        wrapper: &[&str],
        bin: &str,
        args: &[&str],
        env: &[(String, String)],
        found_in: fn(&str) -> Option<T>,
        keep: Option<Output>,
    ) -> (Self, tokio::sync::oneshot::Receiver<T>) {
        let (reader, writer) = std::io::pipe().expect("pipe");
        let mut cmd = Self::command_via(wrapper, bin, args, env);
        cmd.stdout(writer.try_clone().expect("pipe")).stderr(writer);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        // Our copies of the write end go with `cmd`: the thread sees EOF when the child exits.
        drop(cmd);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let show = std::env::var_os("TEST_LOG").is_some();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(reader).split(b'\n') {
                let Ok(line) = line else { break };
                if show {
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(&line);
                    let _ = err.write_all(b"\n");
                }
                let text = String::from_utf8_lossy(&line);
                if tx.is_some()
                    && let Some(found) = found_in(&text)
                {
                    let _ = tx.take().expect("checked").send(found);
                }
                if let Some(keep) = &keep {
                    keep.push(&text);
                }
            }
        });
        (
            Self {
                child,
                name: bin.to_owned(),
            },
            rx,
        )
    }

    fn command(bin: &str, args: &[&str], env: &[(String, String)]) -> Command {
        Self::command_via(&[], bin, args, env)
    }

    /// The command for `bin`, run through `wrapper` when it is not empty: `wrapper[0]` is
    /// the program, the rest and then the binary's path its arguments. The wrapper must
    /// exec the binary (as `ip netns exec` does), so the pid is the binary's own.
    fn command_via(
        wrapper: &[&str],
        bin: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> Command {
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin_path(bin));
                c
            }
            None => Command::new(bin_path(bin)),
        };
        cmd.args(args).envs(env.iter().cloned()).kill_on_drop(true);
        cmd.env(
            "ERRAND_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"),
        );
        cmd
    }

    /// The process id, to signal it.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id().expect("running") as i32)
    }

    /// Sends `sig` (SIGTERM for a graceful stop, SIGKILL for a crash).
    pub fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(self.pid(), sig).expect("signal");
    }

    /// Waits for the process to exit; returns its exit code (None if killed by a signal).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {timeout:?}", self.name))
            .expect("wait");
        status.code()
    }
}

/// Everything a process started with [`Proc::spawn_logged`] (or an `Errand::…_logged`)
/// printed so far, a line each, ANSI colours removed.
#[derive(Debug, Clone, Default)]
pub struct Output(Arc<Mutex<String>>);

impl Output {
    fn push(&self, line: &str) {
        let mut text = self.0.lock().unwrap_or_else(|p| p.into_inner());
        text.push_str(&without_ansi(line));
        text.push('\n');
    }

    /// The output so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The lines so far (ANSI escapes removed).
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }

    /// Whether a line so far contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(needle)
    }

    /// Waits until a line contains `needle`; panics after `timeout`, with the output.
    pub async fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no line with `{needle}` within {timeout:?}; output:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `line` without its ANSI escape sequences (CSI: ESC [ parameters, ended by a letter).
fn without_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

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

/// The port of an `errand-api listening` log line, pretty (`port=8080`, maybe with ANSI
/// colours) or JSON (`"port":8080`).
pub fn listening_port(line: &str) -> Option<u16> {
    log_field(line, "errand-api listening", "port")?
        .parse()
        .ok()
}

/// The address of a worker's `serving metrics at /metrics` log line, pretty
/// (`addr=127.0.0.1:9091`, maybe with ANSI colours) or JSON (`"addr":"127.0.0.1:9091"`).
pub fn metrics_addr(line: &str) -> Option<SocketAddr> {
    log_field(line, "serving metrics at /metrics", "addr")?
        .parse()
        .ok()
}

/// Field `field` of a log line saying `message`, in either log format.
fn log_field(line: &str, message: &str, field: &str) -> Option<String> {
    if !line.contains(message) {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        return match &v[field] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
    }
    let plain = without_ansi(line);
    let key = format!("{field}=");
    let at = plain
        .match_indices(&key)
        .find(|(i, _)| *i == 0 || plain[..*i].ends_with(char::is_whitespace))?
        .0
        + key.len();
    Some(
        plain[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect(),
    )
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

/// Typed calls to errand's HTTP API for tests, shared by every e2e test file.
pub mod api {
    use std::time::Duration;

    use serde_json::Value;

    /// Submits a task and asserts it was accepted (202); returns the record.
    pub async fn submit(http: &reqwest::Client, base: &str, body: Value) -> Value {
        let res = http
            .post(format!("{base}/v1/tasks"))
            .json(&body)
            .send()
            .await
            .expect("submit");
        assert_eq!(res.status(), 202, "submit {body}");
        res.json().await.expect("record")
    }

    /// The task's record.
    pub async fn get(http: &reqwest::Client, base: &str, id: &str) -> Value {
        http.get(format!("{base}/v1/tasks/{id}"))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("record")
    }

    /// Waits for task `id` to reach `state`; returns the record then.
    pub async fn wait_state(
        http: &reqwest::Client,
        base: &str,
        id: &str,
        state: &str,
        timeout: Duration,
    ) -> Value {
        super::wait_for(&format!("task {id} to be {state}"), timeout, || async {
            let r: Value = http
                .get(format!("{base}/v1/tasks/{id}"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (r["state"] == state).then_some(r)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::{listening_port, metrics_addr};

    #[test]
    fn the_port_is_read_from_pretty_and_json_listening_lines() {
        let pretty = "\u{1b}[2m2026-12-02T03:14:56.572370Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m errand-api listening; Swagger UI at /docs \u{1b}[3mport\u{1b}[0m\u{1b}[2m=\u{1b}[0m40535";
        assert_eq!(listening_port(pretty), Some(40535));
        let json = r#"{"timestamp":"2026-12-02T03:14:59.902748Z","level":"INFO","message":"errand-api listening; Swagger UI at /docs","port":34195,"target":"errand_api"}"#;
        assert_eq!(listening_port(json), Some(34195));
        assert_eq!(listening_port("starting 2 workers port=1"), None);
    }

    #[test]
    fn the_metrics_addr_is_read_from_pretty_and_json_lines() {
        let pretty = "\u{1b}[2m2026-12-02T03:14:56.572370Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m serving metrics at /metrics \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:40535";
        assert_eq!(
            metrics_addr(pretty),
            Some("127.0.0.1:40535".parse().unwrap())
        );
        let json = r#"{"timestamp":"2026-12-02T03:14:59.902748Z","level":"INFO","message":"serving metrics at /metrics","addr":"127.0.0.1:34195","target":"errand_worker::metrics"}"#;
        assert_eq!(metrics_addr(json), Some("127.0.0.1:34195".parse().unwrap()));
        assert_eq!(metrics_addr("listening addr=127.0.0.1:1"), None);
    }
}
