//! Test-only harness: a real `redis-server` on a free port in a temp dir, the real errand
//! binaries as child processes, and waiting on conditions with deadlines (never fixed
//! sleeps).

use std::{
    net::TcpListener,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::process::{Child, Command};

pub mod cluster;
pub mod smtp;

/// A port nobody is listening on right now.
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
pub struct Tls {
    pub ca_file: PathBuf,
    pub ca_pem: Vec<u8>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// With `appendonly`, data survives a restart (as with the docker-compose Redis).
    pub async fn start_with(appendonly: bool) -> Self {
        let mut s = Self::unstarted(&[]);
        s.appendonly = appendonly;
        s.spawn(true).await;
        s
    }

    /// With extra arguments, e.g. `["--requirepass", "pw"]` (which the harness then uses).
    pub async fn start_args(args: &[&str]) -> Self {
        let mut s = Self::unstarted(args);
        s.spawn(true).await;
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
        let port = s.port.to_string();
        s.args.extend(
            [
                "--tls-port",
                &port,
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
        s.spawn(true).await;
        s
    }

    async fn spawn(&mut self, wait_ready: bool) {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let plain_port = if self.tls.is_some() {
            "0".to_owned()
        } else {
            self.port.to_string()
        };
        let child = Command::new(&bin)
            .args(["--port", &plain_port, "--bind", "127.0.0.1", "--save", ""])
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
            });
        self.child = Some(child);
        let client = self.client();
        wait_for(
            "redis-server to answer PING",
            Duration::from_secs(10),
            || {
                let client = client.clone();
                async move {
                    let mut c = client.get_multiplexed_async_connection().await.ok()?;
                    match redis::cmd("PING").query_async::<String>(&mut c).await {
                        Ok(_) => Some(()),
                        // Up, but still loading: what a test restarting it slowly wants.
                        Err(e) if !wait_ready && e.code() == Some("LOADING") => Some(()),
                        Err(_) => None,
                    }
                }
            },
        )
        .await;
    }

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

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
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
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// Spawns `bin` with `env`. Logs go to the test's output only when `TEST_LOG` is set.
    pub fn spawn(bin: &str, args: &[&str], env: &[(String, String)]) -> Self {
        let mut cmd = Command::new(bin_path(bin));
        cmd.args(args).envs(env.iter().cloned()).kill_on_drop(true);
        cmd.env(
            "ERRAND_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"),
        );
        if std::env::var_os("TEST_LOG").is_none() {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        Self {
            child,
            name: bin.to_owned(),
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id().expect("running") as i32)
    }

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

/// One errand deployment for a test: env shared by its api and workers.
pub struct Errand {
    pub env: Vec<(String, String)>,
    pub api_port: u16,
}

impl Errand {
    /// Settings pointing at `redis` under a key prefix unique to this test.
    pub fn new(redis: &RedisServer) -> Self {
        Self::at(&redis.url())
    }

    /// Settings pointing at the Redis (or `redis+cluster://` cluster) at `url`.
    pub fn at(url: &str) -> Self {
        let api_port = free_port();
        let prefix = format!("t{}", ulid_like());
        let env = vec![
            ("ERRAND__REDIS__URL".into(), url.to_owned()),
            ("ERRAND__REDIS__KEY_PREFIX".into(), prefix),
            ("ERRAND__API__PORT".into(), api_port.to_string()),
            ("ERRAND__WORKER__LEASE_SECS".into(), "3".into()),
            ("ERRAND__TASKS__DIAGNOSTIC_KINDS".into(), "true".into()),
            (
                "RUST_LOG".into(),
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ),
        ];
        Self { env, api_port }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    pub async fn spawn_api(&self) -> Proc {
        let p = Proc::spawn("errand-api", &[], &self.env);
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

    pub fn spawn_worker(&self, args: &[&str]) -> Proc {
        Proc::spawn("errand-worker", args, &self.env)
    }
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
