//! Layered settings: the embedded `config/base.yaml`, then `config/base.yaml` and
//! `config/{ERRAND_ENV}.yaml` from the config directory when present, then `ERRAND__…`
//! environment variables. The embedded copy means a binary run from any directory still
//! has a complete, working configuration.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

mod access;
mod destinations;
mod email;
mod webhooks;

/// Most tasks of one queue a worker process runs at once (`worker.queues[].concurrency`):
/// the lease renewal sends every held claim of a queue each round.
pub const MAX_CONCURRENCY: usize = 10_000;
/// Most tasks in one batch submit (`api.max_batch`): one script call creates them all.
pub const MAX_SUBMIT_BATCH: usize = 10_000;
pub use access::{ApiKey, MIN_PRODUCTION_KEY_CHARS, RateLimitSettings, Scope};
pub use destinations::{DestinationPolicy, DestinationSettings, HostVerdict, Unresolved};
pub use email::{EmailSettings, EmailTransport, SmtpSettings, SmtpTls};
pub use webhooks::{MAX_CALLBACK_URL_BYTES, WebhookSecret, WebhookSettings, policy_message};

const EMBEDDED_BASE: &str = include_str!("../../../config/base.yaml");
/// Compiled in too, under the files on disk, so `ERRAND_ENV=production` is safe by default
/// even with a config directory that has no `production.yaml`.
const EMBEDDED_PRODUCTION: &str = include_str!("../../../config/production.yaml");

/// Which environment-specific file is layered over the base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Environment {
    /// Development: `config/local.yaml`, open API, mail to files.
    #[default]
    Local,
    /// `config/production.yaml` (also compiled in): keys required, private ranges refused.
    Production,
}

impl Environment {
    /// The name `ERRAND_ENV` takes and the environment file is named after.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Local => "local",
            Environment::Production => "production",
        }
    }
}

impl TryFrom<String> for Environment {
    type Error = SettingsError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.to_lowercase().as_str() {
            "local" => Ok(Self::Local),
            "production" => Ok(Self::Production),
            other => Err(SettingsError::Environment(other.to_owned())),
        }
    }
}

/// Why the settings could not be loaded; both binaries refuse to start on it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// `ERRAND_ENV` names no known environment.
    #[error("ERRAND_ENV must be `local` or `production`, not `{0}`")]
    Environment(String),
    /// A file or variable does not parse, or a key has the wrong type.
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigError),
    /// Every key parsed, but a value or a combination is refused (`validate`).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Every setting of both binaries, one section per key of `config/base.yaml` (whose
/// comments are the reference for each value).
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `redis.*`: where the state lives.
    pub redis: RedisSettings,
    /// `api.*`: the HTTP server and its limits.
    pub api: ApiSettings,
    /// `worker.*`: queues served, leases, shutdown.
    pub worker: WorkerSettings,
    /// `tasks.*`: defaults and the built-in kinds' bounds.
    pub tasks: TaskSettings,
    /// `log.*`.
    pub log: LogSettings,
    /// `schedules.*`: how workers fire periodic schedules.
    pub schedules: ScheduleSettings,
    /// `workflows.*`: the bounds of a workflow.
    pub workflows: WorkflowSettings,
    /// `email.*`: how `send_email` delivers.
    pub email: EmailSettings,
    /// `webhooks.*`: completion callbacks.
    pub webhooks: WebhookSettings,
    /// `telemetry.*`: trace export; absent means off.
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// The `ERRAND_ENV` these settings were loaded for.
    #[serde(skip)]
    pub env: Environment,
}

/// The connection to Redis (one server, or a cluster with `redis+cluster://`).
#[derive(Clone, Deserialize)]
pub struct RedisSettings {
    /// `redis://[user][:password]@host:port[/db]`, or `rediss://…` for TLS.
    pub url: String,
    /// The first segment of every key errand owns, so deployments can share a Redis.
    pub key_prefix: String,
    /// A reply slower than this fails the call (503 at the API) instead of hanging it.
    pub response_timeout_ms: u64,
    /// Bound on establishing a connection, TLS handshake included.
    pub connect_timeout_ms: u64,
    /// PEM file of the certificate authorities a `rediss://` server's certificate must
    /// chain to, instead of the system's (which `SSL_CERT_FILE` can also point elsewhere).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

/// The URL with its password replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
            } else {
                format!("{}***{}", &url[..scheme + 3], &url[at..])
            }
        }
        _ => url.to_owned(),
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("response_timeout_ms", &self.response_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

impl RedisSettings {
    /// `response_timeout_ms` as a duration.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }
    /// `connect_timeout_ms` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// The API server: where it listens and what it accepts.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiSettings {
    /// Address to bind (`0.0.0.0` in containers).
    pub host: String,
    /// Port to bind; 0 lets the OS pick (the bound port is logged).
    pub port: u16,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Largest task payload as JSON bytes (413 beyond).
    pub max_payload_bytes: usize,
    /// Sent as `Retry-After` with every 503.
    pub retry_after_secs: u64,
    /// Upper bound for `GET /v1/tasks/{id}?wait=SECS`.
    pub max_wait_secs: u64,
    /// Most tasks in one `POST /v1/tasks/batch`.
    pub max_batch: usize,
    /// Largest body the batch route accepts.
    pub max_batch_body_bytes: usize,
    /// Bearer keys, each `KEY` (admin) or `read:KEY` / `submit:KEY` / `admin:KEY`.
    #[serde(default, deserialize_with = "access::api_keys")]
    pub api_keys: Vec<ApiKey>,
    /// Production refuses to start without keys unless this says, in so many words, that
    /// an open API is intended.
    #[serde(default)]
    pub allow_anonymous: bool,
    /// Submit rate limit per key (or per client address when the API is open).
    pub rate_limit: RateLimitSettings,
    /// Most entries the in-process background-task registry (`/tasks/background/*`) keeps.
    pub max_background_tasks: usize,
    /// On SIGTERM/SIGINT, how long requests in flight may finish (long-polls and event
    /// streams end at once) before their connections are closed.
    pub shutdown_grace_secs: u64,
    /// How often each api process reads the kind registry again (a kind it does not know
    /// is read at once; this is how a changed schema or a worker gone shows up).
    #[serde(default = "default_kinds_refresh_ms")]
    pub kinds_refresh_ms: u64,
    /// How often this api process runs upkeep (due tasks queued, lapsed leases recovered,
    /// expired ids dropped), as workers do, in ms; 0: never (then only workers run it,
    /// and HTTP workers run none).
    #[serde(default = "default_upkeep_ms")]
    pub upkeep_ms: u64,
    /// ReDoc's standalone bundle, served at `/redoc/redoc.standalone.js` so `/redoc` needs no
    /// CDN. Resolved by `load_from` against the config directory's parent, so the default
    /// finds the repository's `assets/` wherever the binary is started from.
    pub redoc_js_path: PathBuf,
}

fn default_kinds_refresh_ms() -> u64 {
    2000
}

fn default_upkeep_ms() -> u64 {
    250
}

impl ApiSettings {
    /// `shutdown_grace_secs` as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// One queue a worker serves.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueSettings {
    /// The queue's name, as clients submit to it.
    pub name: String,
    /// Most of its tasks this process runs at once.
    pub concurrency: usize,
}

/// A worker process: what it serves and how it behaves.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    /// Queues served, each with its own concurrency.
    pub queues: Vec<QueueSettings>,
    /// Most tasks one fetch takes (never more than the queue's free slots).
    pub batch_size: usize,
    /// Fallback poll when no wake-up arrives over pub/sub.
    pub poll_interval_ms: u64,
    /// A running task's lease; not renewed for this long, it is run again elsewhere.
    pub lease_secs: u64,
    /// On SIGTERM/SIGINT, how long running tasks may finish before they are abandoned.
    pub shutdown_grace_secs: u64,
    /// Where this worker serves `GET /metrics` (`host:port`); empty or absent: no listener
    /// and no metrics are kept (docs/observability.md).
    #[serde(default, deserialize_with = "empty_is_none")]
    pub metrics_addr: Option<String>,
}

/// OpenTelemetry traces (docs/observability.md).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TelemetrySettings {
    /// OTLP/HTTP (protobuf) collector base URL, e.g. `http://127.0.0.1:4318`; spans go to
    /// `<endpoint>/v1/traces`. Empty or absent: no traces are exported.
    #[serde(default, deserialize_with = "empty_is_none")]
    pub otlp_endpoint: Option<String>,
}

/// An empty string in YAML or `ERRAND__…=` means unset, so an override can switch a
/// configured option back off.
fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}

impl WorkerSettings {
    /// `poll_interval_ms` as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
    /// `lease_secs` as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
    /// `shutdown_grace_secs` as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// Longest `tasks.tombstone_secs`: a week of expired ids is already more than a read by id
/// needs, and every tombstone is memory.
pub const MAX_TOMBSTONE_SECS: u64 = 7 * 86_400;

/// Task defaults, and the bounds the built-in kinds check at submit and at run.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskSettings {
    /// Attempts when a submission names none.
    pub default_max_attempts: u32,
    /// How long a terminal record stays readable when a submission names no TTL.
    pub default_result_ttl_secs: u64,
    /// How long an id whose record expired still answers 404 `task-expired` rather than
    /// `task-not-found` (0: not at all); what memory holds past the records (~60 bytes an
    /// id). At most [`MAX_TOMBSTONE_SECS`].
    pub tombstone_secs: u64,
    /// Largest result a task may store, as JSON bytes; larger fails the task.
    pub max_result_bytes: usize,
    /// Upper bound for `sleep`, so a typo cannot park a worker slot for a year.
    pub max_sleep_secs: u64,
    /// Enables the `chaos` kind (panics, failures, blocked threads on demand).
    pub diagnostic_kinds: bool,
    /// `sha256`: most hashing rounds one task may ask for.
    pub sha256_max_rounds: u64,
    /// `fibonacci`: largest n.
    pub fibonacci_max_n: u64,
    /// `http_request`/`fan_out`: per-request timeout when the payload gives none.
    pub http_default_timeout_secs: f64,
    /// `http_request`/`fan_out`: the longest timeout a payload may ask for.
    pub http_max_timeout_secs: f64,
    /// `http_request`: response bytes kept in the result (the rest is dropped, flagged).
    pub http_max_response_bytes: usize,
    /// `fan_out`: most requests in one task.
    pub fan_out_max_requests: usize,
    /// `fan_out`: most requests in flight at once.
    pub fan_out_max_concurrency: usize,
    /// `send_email`: most recipients in one task.
    pub email_max_recipients: usize,
    /// Where `http_request` and `fan_out` may send requests.
    #[serde(default)]
    pub http_destinations: DestinationPolicy,
}

/// Most steps a workflow may be submitted with, and most one map step may spawn: each
/// bounds a script call (a workflow's create, a map step's spawn).
pub const MAX_WORKFLOW_STEPS: usize = 10_000;

/// Workflows (`/v1/workflows`, docs/workflows.md).
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowSettings {
    /// Most steps one workflow is submitted with (at most [`MAX_WORKFLOW_STEPS`]).
    pub max_steps: usize,
    /// Most tasks one map step may spawn (at most [`MAX_WORKFLOW_STEPS`]); more fails the
    /// step `invalid_spawn`.
    pub max_fan_out: usize,
    /// How long an ended workflow stays readable when its submit names no TTL.
    pub default_result_ttl_secs: u64,
}

/// How worker processes fire periodic schedules (`/v1/schedules`).
#[derive(Debug, Clone, Deserialize)]
pub struct ScheduleSettings {
    /// Whether this worker process fires due schedules at all.
    pub fire: bool,
    /// Longest pause between looks for due schedules.
    pub poll_ms: u64,
    /// A tick fired later than this was missed (`misfire: skip` drops it).
    pub misfire_grace_ms: u64,
}

impl ScheduleSettings {
    /// `poll_ms` as a duration.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }
    /// `misfire_grace_ms` as a duration.
    pub fn misfire_grace(&self) -> Duration {
        Duration::from_millis(self.misfire_grace_ms)
    }
}

/// How log lines are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people at a terminal.
    Pretty,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Logging (`RUST_LOG`, when set, wins over `filter`).
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// Pretty or JSON lines.
    pub format: LogFormat,
    /// A `tracing` env-filter directive, e.g. `info,errand_worker=debug`.
    pub filter: String,
}

impl Settings {
    /// Loads settings for the environment named by `ERRAND_ENV` (default `local`) from the
    /// directory named by `ERRAND_CONFIG_DIR` (default `./config`).
    pub fn load() -> Result<Self, SettingsError> {
        let env: Environment = std::env::var("ERRAND_ENV")
            .unwrap_or_else(|_| "local".into())
            .try_into()?;
        let dir = std::env::var_os("ERRAND_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        Self::load_from(env, &dir)
    }

    /// Loads from `dir` for `env`: what tests use, with a directory of their own.
    pub fn load_from(env: Environment, dir: &std::path::Path) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(
                EMBEDDED_BASE,
                config::FileFormat::Yaml,
            ))
            .add_source(config::File::from(dir.join("base.yaml")).required(false));
        if env == Environment::Production {
            builder = builder.add_source(config::File::from_str(
                EMBEDDED_PRODUCTION,
                config::FileFormat::Yaml,
            ));
        }
        let mut settings: Settings = builder
            .add_source(
                config::File::from(dir.join(format!("{}.yaml", env.as_str()))).required(false),
            )
            .add_source(
                config::Environment::with_prefix("ERRAND")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("api.api_keys")
                    .with_list_parse_key("tasks.http_destinations.allow")
                    .with_list_parse_key("tasks.http_destinations.deny")
                    .with_list_parse_key("webhooks.secrets")
                    .with_list_parse_key("webhooks.destinations.allow")
                    .with_list_parse_key("webhooks.destinations.deny"),
            )
            .build()?
            .try_deserialize()?;
        settings.api.redoc_js_path = beside_config_dir(dir, &settings.api.redoc_js_path);
        if let Some(ca) = &settings.redis.tls_ca_file {
            settings.redis.tls_ca_file = Some(beside_config_dir(dir, ca));
        }
        settings.env = env;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let bad = |m: &str| Err(SettingsError::Invalid(m.to_owned()));
        if self.worker.queues.is_empty() {
            return bad("worker.queues must name at least one queue");
        }
        // Settings that size a script call are bounded, so no call can grow past what a
        // script handles in one step (docs/reliability.md, "Bounds").
        if let Some(q) = self
            .worker
            .queues
            .iter()
            .find(|q| !(1..=MAX_CONCURRENCY).contains(&q.concurrency))
        {
            return bad(&format!(
                "worker.queues[].concurrency must be 1 to {MAX_CONCURRENCY} (queue `{}` has {})",
                q.name, q.concurrency
            ));
        }
        if !(1..=crate::store::MAX_FETCH).contains(&self.worker.batch_size) {
            return bad(&format!(
                "worker.batch_size must be 1 to {} (it is {})",
                crate::store::MAX_FETCH,
                self.worker.batch_size
            ));
        }
        if !(1..=MAX_SUBMIT_BATCH).contains(&self.api.max_batch) {
            return bad(&format!(
                "api.max_batch must be 1 to {MAX_SUBMIT_BATCH} (it is {})",
                self.api.max_batch
            ));
        }
        if let Some(a) = &self.worker.metrics_addr
            && a.parse::<std::net::SocketAddr>().is_err()
        {
            return bad(
                "worker.metrics_addr must be host:port with an IP address, e.g. 0.0.0.0:9091",
            );
        }
        if let Some(e) = &self.telemetry.otlp_endpoint
            && !e.starts_with("http://")
        {
            return bad(
                "telemetry.otlp_endpoint must be an http:// URL (OTLP/HTTP), e.g. http://127.0.0.1:4318",
            );
        }
        if !(1..=MAX_WORKFLOW_STEPS).contains(&self.workflows.max_steps) {
            return bad(&format!(
                "workflows.max_steps must be 1 to {MAX_WORKFLOW_STEPS} (it is {})",
                self.workflows.max_steps
            ));
        }
        if !(1..=MAX_WORKFLOW_STEPS).contains(&self.workflows.max_fan_out) {
            return bad(&format!(
                "workflows.max_fan_out must be 1 to {MAX_WORKFLOW_STEPS} (it is {})",
                self.workflows.max_fan_out
            ));
        }
        if self.worker.lease_secs < 2 {
            return bad("worker.lease_secs must be at least 2");
        }
        if self.api.max_background_tasks == 0 {
            return bad("api.max_background_tasks must be at least 1");
        }
        if self.schedules.poll_ms == 0 {
            return bad("schedules.poll_ms must be at least 1");
        }
        if self.tasks.tombstone_secs > MAX_TOMBSTONE_SECS {
            return Err(SettingsError::Invalid(format!(
                "tasks.tombstone_secs must be at most {MAX_TOMBSTONE_SECS} (7 days), not {}",
                self.tasks.tombstone_secs
            )));
        }
        if self.tasks.default_max_attempts == 0 {
            return bad("tasks.default_max_attempts must be at least 1");
        }
        if self.tasks.sha256_max_rounds == 0 {
            return bad("tasks.sha256_max_rounds must be at least 1");
        }
        let t = &self.tasks;
        if !(t.http_default_timeout_secs > 0.0
            && t.http_default_timeout_secs <= t.http_max_timeout_secs)
        {
            return bad("tasks.http_default_timeout_secs must be > 0 and <= http_max_timeout_secs");
        }
        if t.fan_out_max_requests == 0 || t.fan_out_max_concurrency == 0 {
            return bad(
                "tasks.fan_out_max_requests and fan_out_max_concurrency must be at least 1",
            );
        }
        if t.email_max_recipients == 0 {
            return bad("tasks.email_max_recipients must be at least 1");
        }
        let w = &self.webhooks;
        if w.timeout_ms == 0 || w.concurrency == 0 || w.poll_ms == 0 || w.initial_retry_ms == 0 {
            return bad(
                "webhooks.timeout_ms, concurrency, poll_ms and initial_retry_ms must be at least 1",
            );
        }
        if w.concurrency > crate::store::MAX_FETCH {
            return bad(&format!(
                "webhooks.concurrency must be at most {} (it is {}): it sizes one outbox claim",
                crate::store::MAX_FETCH,
                w.concurrency
            ));
        }
        if w.max_retry_ms < w.initial_retry_ms {
            return bad("webhooks.max_retry_ms must be at least initial_retry_ms");
        }
        let r = &self.api.rate_limit;
        if !(r.submits_per_sec.is_finite() && r.submits_per_sec >= 0.0) {
            return bad("api.rate_limit.submits_per_sec must be 0 (off) or more");
        }
        if r.enabled() && r.burst == 0 {
            return bad("api.rate_limit.burst must be at least 1 when the limit is on");
        }
        Ok(())
    }

    /// The API's own check before it listens: production needs API keys (long ones)
    /// unless `api.allow_anonymous` is set. The worker never serves HTTP and skips it.
    pub fn check_api_access(&self) -> Result<(), SettingsError> {
        if self.env != Environment::Production {
            return Ok(());
        }
        if self.api.api_keys.is_empty() && !self.api.allow_anonymous {
            return Err(SettingsError::Invalid(
                "ERRAND_ENV=production and no API key is configured, so anyone who can reach \
                 the API could submit tasks. Set one (or several, comma-separated) with \
                 ERRAND__API__API_KEYS=$(openssl rand -hex 32), or api.api_keys in \
                 config/production.yaml; clients send `Authorization: Bearer <key>`. To run \
                 without authentication on purpose, set api.allow_anonymous: true \
                 (ERRAND__API__ALLOW_ANONYMOUS=true)."
                    .into(),
            ));
        }
        if let Some(k) = self
            .api
            .api_keys
            .iter()
            .find(|k| k.secret().len() < MIN_PRODUCTION_KEY_CHARS)
        {
            return Err(SettingsError::Invalid(format!(
                "api.api_keys: a {} key has {} characters; production needs at least \
                 {MIN_PRODUCTION_KEY_CHARS} (generate one with `openssl rand -hex 32`)",
                k.scope.as_str(),
                k.secret().len()
            )));
        }
        Ok(())
    }
}

/// A relative path in the settings names a file of the deployment the config directory
/// belongs to (`./config` → the working directory, `/app/config` → `/app`), not of whatever
/// directory the process happens to start in. Absolute paths are kept.
fn beside_config_dir(config_dir: &std::path::Path, path: &std::path::Path) -> PathBuf {
    config_dir
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .join(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_base_alone_is_a_complete_configuration() {
        let dir = std::env::temp_dir().join("errand-no-config-here");
        let s = Settings::load_from(Environment::Local, &dir).expect("base must load");
        assert_eq!(s.api.port, 8080);
        assert_eq!(s.worker.queues[0].name, "default");
        assert_eq!(s.log.format, LogFormat::Pretty);
    }

    #[test]
    fn production_file_switches_to_json_logs() {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"));
        let s = Settings::load_from(Environment::Production, &dir).unwrap();
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.api.host, "0.0.0.0");
    }

    #[test]
    fn relative_redoc_js_path_is_resolved_against_the_config_dirs_parent() {
        let s =
            Settings::load_from(Environment::Local, std::path::Path::new("/app/config")).unwrap();
        assert_eq!(
            s.api.redoc_js_path,
            PathBuf::from("/app/assets/vendor/redoc.standalone.js")
        );
        let s = Settings::load_from(Environment::Local, std::path::Path::new("config")).unwrap();
        assert_eq!(
            s.api.redoc_js_path,
            PathBuf::from("assets/vendor/redoc.standalone.js")
        );
        assert_eq!(
            beside_config_dir(
                std::path::Path::new("/app/config"),
                std::path::Path::new("/opt/redoc.js")
            ),
            PathBuf::from("/opt/redoc.js")
        );
    }

    /// Every setting that sizes one script call is bounded, refused at start by name (a
    /// batch of 5,000 claims once failed inside the fetch script after writing them all).
    #[test]
    fn settings_that_size_a_script_call_are_bounded_by_name() {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"));
        let base = Settings::load_from(Environment::Local, &dir).unwrap();
        type Break = fn(&mut Settings);
        let cases: [(&str, Break); 5] = [
            ("worker.batch_size", |s| s.worker.batch_size = 5_000),
            ("worker.batch_size", |s| s.worker.batch_size = 0),
            ("worker.queues[].concurrency", |s| {
                s.worker.queues[0].concurrency = MAX_CONCURRENCY + 1;
            }),
            ("api.max_batch", |s| s.api.max_batch = MAX_SUBMIT_BATCH + 1),
            ("webhooks.concurrency", |s| s.webhooks.concurrency = 5_000),
        ];
        for (name, break_it) in cases {
            let mut s = base.clone();
            break_it(&mut s);
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{name}: {e}");
        }
        let mut s = base;
        s.worker.batch_size = crate::store::MAX_FETCH;
        s.worker.queues[0].concurrency = MAX_CONCURRENCY;
        s.validate().unwrap();
    }

    #[test]
    fn observability_is_off_by_default_and_bad_addresses_are_refused_by_name() {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"));
        let mut s = Settings::load_from(Environment::Local, &dir).unwrap();
        assert_eq!(s.worker.metrics_addr, None, "the empty default is off");
        assert_eq!(s.telemetry.otlp_endpoint, None);
        s.worker.metrics_addr = Some("0.0.0.0:9091".into());
        s.telemetry.otlp_endpoint = Some("http://127.0.0.1:4318".into());
        s.validate().unwrap();
        s.worker.metrics_addr = Some("localhost".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("worker.metrics_addr"), "{e}");
        s.worker.metrics_addr = None;
        s.telemetry.otlp_endpoint = Some("grpc://collector:4317".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("telemetry.otlp_endpoint"), "{e}");
    }

    #[test]
    fn tombstone_secs_defaults_to_a_day_and_is_bounded_by_name() {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"));
        let mut s = Settings::load_from(Environment::Local, &dir).unwrap();
        assert_eq!(s.tasks.tombstone_secs, 86_400);
        s.tasks.tombstone_secs = 0;
        s.validate().unwrap();
        s.tasks.tombstone_secs = MAX_TOMBSTONE_SECS;
        s.validate().unwrap();
        s.tasks.tombstone_secs = MAX_TOMBSTONE_SECS + 1;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("tasks.tombstone_secs"), "{e}");
    }

    #[test]
    fn unknown_environment_is_rejected() {
        assert!(Environment::try_from("staging".to_owned()).is_err());
    }
}
