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
    #[default]
    Local,
    Production,
}

impl Environment {
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

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("ERRAND_ENV must be `local` or `production`, not `{0}`")]
    Environment(String),
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub redis: RedisSettings,
    pub api: ApiSettings,
    pub worker: WorkerSettings,
    pub tasks: TaskSettings,
    pub log: LogSettings,
    pub schedules: ScheduleSettings,
    pub email: EmailSettings,
    pub webhooks: WebhookSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// The `ERRAND_ENV` these settings were loaded for.
    #[serde(skip)]
    pub env: Environment,
}

#[derive(Clone, Deserialize)]
pub struct RedisSettings {
    /// `redis://[user][:password]@host:port[/db]`, or `rediss://…` for TLS.
    pub url: String,
    pub key_prefix: String,
    pub response_timeout_ms: u64,
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
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiSettings {
    pub host: String,
    pub port: u16,
    pub max_body_bytes: usize,
    pub max_payload_bytes: usize,
    pub retry_after_secs: u64,
    pub max_wait_secs: u64,
    pub max_batch: usize,
    pub max_batch_body_bytes: usize,
    /// Bearer keys, each `KEY` (admin) or `read:KEY` / `submit:KEY` / `admin:KEY`.
    #[serde(default, deserialize_with = "access::api_keys")]
    pub api_keys: Vec<ApiKey>,
    /// Production refuses to start without keys unless this says, in so many words, that
    /// an open API is intended.
    #[serde(default)]
    pub allow_anonymous: bool,
    pub rate_limit: RateLimitSettings,
    /// Most entries the in-process background-task registry (`/tasks/background/*`) keeps.
    pub max_background_tasks: usize,
    /// ReDoc's standalone bundle, served at `/redoc/redoc.standalone.js` so `/redoc` needs no
    /// CDN. Resolved by `load_from` against the config directory's parent, so the default
    /// finds the repository's `assets/` wherever the binary is started from.
    pub redoc_js_path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueueSettings {
    pub name: String,
    pub concurrency: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    pub queues: Vec<QueueSettings>,
    pub batch_size: usize,
    pub poll_interval_ms: u64,
    pub lease_secs: u64,
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
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct TaskSettings {
    pub default_max_attempts: u32,
    pub default_result_ttl_secs: u64,
    pub max_result_bytes: usize,
    pub max_sleep_secs: u64,
    /// Enables the `chaos` kind (panics, failures, blocked threads on demand).
    pub diagnostic_kinds: bool,
    pub sha256_max_rounds: u64,
    pub fibonacci_max_n: u64,
    pub http_default_timeout_secs: f64,
    pub http_max_timeout_secs: f64,
    pub http_max_response_bytes: usize,
    pub fan_out_max_requests: usize,
    pub fan_out_max_concurrency: usize,
    pub email_max_recipients: usize,
    /// Where `http_request` and `fan_out` may send requests.
    #[serde(default)]
    pub http_destinations: DestinationPolicy,
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
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }
    pub fn misfire_grace(&self) -> Duration {
        Duration::from_millis(self.misfire_grace_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
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
        if self.worker.queues.iter().any(|q| q.concurrency == 0) {
            return bad("worker.queues[].concurrency must be at least 1");
        }
        if self.worker.batch_size == 0 {
            return bad("worker.batch_size must be at least 1");
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
        if self.worker.lease_secs < 2 {
            return bad("worker.lease_secs must be at least 2");
        }
        if self.api.max_background_tasks == 0 {
            return bad("api.max_background_tasks must be at least 1");
        }
        if self.schedules.poll_ms == 0 {
            return bad("schedules.poll_ms must be at least 1");
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
    fn unknown_environment_is_rejected() {
        assert!(Environment::try_from("staging".to_owned()).is_err());
    }
}
