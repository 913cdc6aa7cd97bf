//! `Catalog`: the kinds one process knows, their registered definitions, and running an
//! attempt of one.

use std::{collections::BTreeMap, sync::Arc};

use errand_core::settings::DestinationPolicy;
use futures::{FutureExt, future::BoxFuture};
use serde::Serialize;
use serde_json::Value;
use utoipa::{PartialSchema, ToSchema};

use errand_core::store::KindDefinition;

use crate::{Failure, TaskContext, TaskKind, builtin, services::Services};

/// Limits kinds check payloads against (from `tasks.*` settings).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Longest `sleep` (and `chaos` delay) a payload may ask for, in seconds, so a typo
    /// cannot park a worker slot for a year.
    pub max_sleep_secs: u64,
    /// Whether the `chaos` kind is offered.
    pub diagnostic_kinds: bool,
    /// Most hashing rounds one `sha256` task may ask for.
    pub sha256_max_rounds: u64,
    /// Largest `n` a `fibonacci` task may ask for.
    pub fibonacci_max_n: u64,
    /// Per-request timeout of `http_request` and `fan_out` when the payload gives none, in
    /// seconds.
    pub http_default_timeout_secs: f64,
    /// Longest per-request timeout a payload may give, in seconds.
    pub http_max_timeout_secs: f64,
    /// Response body kept per request, in bytes; the rest is not read.
    pub http_max_response_bytes: usize,
    /// Most requests in one `fan_out` task.
    pub fan_out_max_requests: usize,
    /// Most `fan_out` requests in flight at once (also the default when a payload gives
    /// none).
    pub fan_out_max_concurrency: usize,
    /// Most recipients in one `send_email` task.
    pub email_max_recipients: usize,
    /// Where `http_request` and `fan_out` may send requests (`tasks.http_destinations`).
    pub http_destinations: Arc<DestinationPolicy>,
}

/// The defaults of `config/base.yaml` (a test keeps them equal), for contexts built outside
/// a catalog and for tests that override one limit.
impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sleep_secs: 86_400,
            diagnostic_kinds: false,
            sha256_max_rounds: 10_000_000,
            fibonacci_max_n: 100_000,
            http_default_timeout_secs: 30.0,
            http_max_timeout_secs: 300.0,
            http_max_response_bytes: 65_536,
            fan_out_max_requests: 100,
            fan_out_max_concurrency: 16,
            email_max_recipients: 100,
            http_destinations: Arc::default(),
        }
    }
}

impl From<&errand_core::settings::TaskSettings> for Limits {
    fn from(t: &errand_core::settings::TaskSettings) -> Self {
        Self {
            max_sleep_secs: t.max_sleep_secs,
            diagnostic_kinds: t.diagnostic_kinds,
            sha256_max_rounds: t.sha256_max_rounds,
            fibonacci_max_n: t.fibonacci_max_n,
            http_default_timeout_secs: t.http_default_timeout_secs,
            http_max_timeout_secs: t.http_max_timeout_secs,
            http_max_response_bytes: t.http_max_response_bytes,
            fan_out_max_requests: t.fan_out_max_requests,
            fan_out_max_concurrency: t.fan_out_max_concurrency,
            email_max_recipients: t.email_max_recipients,
            http_destinations: Arc::new(t.http_destinations.clone()),
        }
    }
}

/// A payload that does not fit its kind. `field` is a JSON path into the payload.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// Where the problem is, e.g. `payload.duration_secs` or `payload.requests[2].url`; the
    /// API sends it as the problem's `field`.
    pub field: String,
    /// What is wrong with it, for people (the problem's `detail`).
    pub message: String,
}

impl Invalid {
    /// A refusal of `field` (a JSON path from the request's root) because of `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A kind as it is described to people: what its registered definition holds.
#[derive(Debug, Clone, Serialize)]
pub struct KindInfo {
    /// The canonical name, the one submissions use and records carry.
    pub name: String,
    /// Other names a submit accepts for this kind (stored as the canonical name).
    pub aliases: Vec<String>,
    /// One line saying what the kind does.
    pub summary: String,
    /// Whether running it twice has the effect of running it once. Delivery is at least
    /// once, so a non-idempotent kind may run again after a worker dies mid-task.
    pub idempotent: bool,
    /// JSON Schema of the payload, with this server's limits (`tasks.*`) as its bounds.
    pub payload_schema: Value,
    /// JSON Schema of a successful run's result (the record's `result`).
    pub result_schema: Value,
    /// A payload the kind accepts, for the docs and as a starting point.
    pub example: Value,
}

type RunFn = fn(TaskContext, Value) -> BoxFuture<'static, Result<Value, Failure>>;

#[derive(Clone)]
struct Entry {
    info: KindInfo,
    payload_name: String,
    result: (String, Value),
    validate: fn(&Value, &Limits) -> Result<(), Invalid>,
    run: RunFn,
}

/// The kinds one process knows: what a worker runs and registers (see
/// [`Catalog::definitions`]), and, for errand's built-in kinds, the typed checks the api
/// adds to their JSON Schema.
#[derive(Clone)]
pub struct Catalog {
    kinds: Arc<BTreeMap<&'static str, Entry>>,
    aliases: Arc<BTreeMap<&'static str, &'static str>>,
    limits: Limits,
    services: Arc<Services>,
    /// Names given twice or not fit to be names, found while adding kinds: the worker
    /// refuses to start with any ([`Catalog::problems`]).
    problems: Vec<String>,
}

/// The kinds by name and the limits: the entries' schemas and function pointers would
/// only be noise, and the services hold clients and mail settings.
impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .field("aliases", &self.aliases)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

pub(crate) fn decode<K: TaskKind>(payload: &Value) -> Result<K::Payload, Invalid> {
    serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "payload".to_owned()
        } else {
            format!("payload.{path}")
        };
        Invalid::new(field, e.into_inner().to_string())
    })
}

fn validate<K: TaskKind>(payload: &Value, limits: &Limits) -> Result<(), Invalid> {
    let p = decode::<K>(payload)?;
    K::check(&p, limits)
}

fn run<K: TaskKind>(
    ctx: TaskContext,
    payload: Value,
) -> BoxFuture<'static, Result<Value, Failure>> {
    let checked = decode::<K>(&payload).and_then(|p| {
        K::check(&p, &ctx.services().limits)?;
        Ok(p)
    });
    match checked {
        Ok(p) => K::run(ctx, p)
            .map(|r| {
                r.and_then(|out| {
                    serde_json::to_value(out)
                        .map_err(|e| Failure::permanent("invalid_result", e.to_string()))
                })
            })
            .boxed(),
        Err(e) => futures::future::ready(Err(Failure::permanent("invalid_payload", e.to_string())))
            .boxed(),
    }
}

impl Catalog {
    /// Every kind errand ships, checked against `limits` (`chaos` only with
    /// `limits.diagnostic_kinds`). `send_email` cannot send until [`Catalog::with_email`].
    pub fn new(limits: Limits) -> Self {
        Self::empty(limits).with_builtin()
    }

    /// No kinds yet: add them with [`Catalog::with`] and [`Catalog::with_builtin`].
    pub fn empty(limits: Limits) -> Self {
        Self {
            kinds: Arc::default(),
            aliases: Arc::default(),
            services: Arc::new(Services::new(limits.clone(), None)),
            limits,
            problems: Vec::new(),
        }
    }

    /// Adds errand's built-in kinds (`chaos` only with `limits.diagnostic_kinds`).
    pub fn with_builtin(self) -> Self {
        let diagnostic = self.limits.diagnostic_kinds;
        let c = self
            .with::<builtin::sleep::Sleep>()
            .with::<builtin::noop::Noop>()
            .with::<builtin::gather::Gather>();
        let c = if diagnostic {
            c.with::<builtin::chaos::Chaos>()
        } else {
            c
        };
        c.with::<builtin::sha256::Sha256>()
            .with::<builtin::fibonacci::Fibonacci>()
            .with::<builtin::http_request::HttpRequest>()
            .with::<builtin::fan_out::FanOut>()
            .with::<builtin::send_email::SendEmail>()
    }

    /// Adds kind `K`. A name or alias already taken, or not fit to be a name, is kept as a
    /// [problem](Catalog::problems) rather than a panic, so the worker can say which.
    pub fn with<K: TaskKind>(mut self) -> Self {
        let mut c = CatalogBuilder {
            kinds: std::mem::take(Arc::make_mut(&mut self.kinds)),
            aliases: std::mem::take(Arc::make_mut(&mut self.aliases)),
            limits: self.limits.clone(),
            problems: std::mem::take(&mut self.problems),
        };
        c.add::<K>();
        self.kinds = Arc::new(c.kinds);
        self.aliases = Arc::new(c.aliases);
        self.problems = c.problems;
        self
    }

    /// What is wrong with the kinds added: names given twice, names that are not names.
    /// Empty for a catalog a worker may run.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Whether the catalog holds no kind.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The limits the kinds were documented and are checked with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What the worker registers in Redis for each kind, in name order: the api validates
    /// submits against these, lists them and documents them, without the kinds' code.
    pub fn definitions(&self) -> Vec<KindDefinition> {
        self.kinds
            .values()
            .map(|e| KindDefinition {
                name: e.info.name.clone(),
                aliases: e.info.aliases.clone(),
                summary: e.info.summary.clone(),
                idempotent: e.info.idempotent,
                payload_schema: e.info.payload_schema.clone(),
                result_schema: e.info.result_schema.clone(),
                example: e.info.example.clone(),
                payload_name: e.payload_name.clone(),
                result_name: e.result.0.clone(),
            })
            .collect()
    }

    /// Gives `send_email` its transport. Only workers need it; without it the kind fails
    /// permanently with `email_not_configured`.
    pub fn with_email(mut self, email: errand_core::settings::EmailSettings) -> Self {
        self.services = Arc::new(Services::new(self.limits.clone(), Some(email)));
        self
    }

    /// The canonical name for `name` (which may be an alias), if the kind exists.
    pub fn resolve(&self, name: &str) -> Option<&'static str> {
        self.kinds
            .get_key_value(name)
            .map(|(k, _)| *k)
            .or_else(|| self.aliases.get(name).copied())
    }

    /// The canonical names of every kind, in name order (aliases not included).
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    /// Checks `payload` for `kind` (a canonical name, see [`Catalog::resolve`]) as a submit
    /// must: its types, then the kind's ranges and this catalog's limits. The error's
    /// `field` is `kind` for an unknown kind, else a path under `payload`.
    pub fn validate(&self, kind: &str, payload: &Value) -> Result<(), Invalid> {
        let e = self
            .kinds
            .get(kind)
            .ok_or_else(|| Invalid::new("kind", format!("unknown task kind `{kind}`")))?;
        // serde also reads a struct from a JSON array of its fields in order, so
        // `"payload": [1]` passed as a sleep of 1 s. A kind documented as an object takes
        // only an object (found by the chaos bad-input test).
        if e.info.payload_schema["type"] == "object" && !payload.is_object() {
            return Err(Invalid::new(
                "payload",
                format!("must be a JSON object (the `{kind}` schema in GET /v1/kinds)"),
            ));
        }
        (e.validate)(payload, &self.limits)
    }

    /// Starts one attempt of `kind`. A kind this catalog does not run fails the attempt,
    /// retryably: on a queue served by workers with different kinds (a rolling deploy
    /// that adds one), another attempt may land on a worker that runs it. Give each set
    /// of kinds its own queue to avoid it (docs/writing-kinds.md).
    pub fn run(
        &self,
        kind: &str,
        ctx: TaskContext,
        payload: Value,
    ) -> BoxFuture<'static, Result<Value, Failure>> {
        match self.kinds.get(kind) {
            Some(e) => (e.run)(ctx.with_services(self.services.clone()), payload),
            None => futures::future::ready(Err(Failure::retryable(
                "unknown_kind",
                format!(
                    "this worker does not run task kind `{kind}` (it runs {}); GET /v1/kinds \
                     says which queues the workers that do serve",
                    self.kinds.keys().copied().collect::<Vec<_>>().join(", ")
                ),
            )))
            .boxed(),
        }
    }

    /// Every kind as it is described to people, in name order (what its definition holds).
    pub fn infos(&self) -> Vec<KindInfo> {
        self.kinds.values().map(|e| e.info.clone()).collect()
    }
}

struct CatalogBuilder {
    kinds: BTreeMap<&'static str, Entry>,
    aliases: BTreeMap<&'static str, &'static str>,
    limits: Limits,
    problems: Vec<String>,
}

/// Whether `name` may name a kind: 1 to 64 of `A-Z a-z 0-9 _ - . :` (it is stored on
/// records, shown in URLs' query strings and used as a metrics label).
pub fn is_kind_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
}

impl CatalogBuilder {
    fn add<K: TaskKind>(&mut self) {
        for n in std::iter::once(&K::NAME).chain(K::ALIASES) {
            if !is_kind_name(n) {
                self.problems.push(format!(
                    "`{n}` cannot name a kind: 1 to 64 of A-Z a-z 0-9 _ - . :"
                ));
                return;
            }
            if self.kinds.contains_key(n) || self.aliases.contains_key(n) {
                self.problems
                    .push(format!("kind `{n}` is added twice (as a name or an alias)"));
                return;
            }
        }
        let mut payload_schema =
            serde_json::to_value(<K::Payload as PartialSchema>::schema()).unwrap_or(Value::Null);
        K::document(&mut payload_schema, &self.limits);
        let result_schema =
            serde_json::to_value(<K::Output as PartialSchema>::schema()).unwrap_or(Value::Null);
        let info = KindInfo {
            name: K::NAME.to_owned(),
            aliases: K::ALIASES.iter().map(|a| (*a).to_owned()).collect(),
            summary: K::SUMMARY.to_owned(),
            idempotent: K::IDEMPOTENT,
            payload_schema,
            result_schema: result_schema.clone(),
            example: K::example(),
        };
        for a in K::ALIASES {
            self.aliases.insert(a, K::NAME);
        }
        self.kinds.insert(
            K::NAME,
            Entry {
                info,
                payload_name: <K::Payload as ToSchema>::name().into_owned(),
                result: (<K::Output as ToSchema>::name().into_owned(), result_schema),
                validate: validate::<K>,
                run: run::<K>,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        Catalog::new(Limits {
            max_sleep_secs: 60,
            diagnostic_kinds: true,
            ..Limits::default()
        })
    }

    #[test]
    fn aliases_resolve_to_the_canonical_kind() {
        let c = catalog();
        assert_eq!(c.resolve("long_running"), Some("sleep"));
        assert_eq!(c.resolve("sleep"), Some("sleep"));
        assert_eq!(c.resolve("nope"), None);
    }

    #[test]
    fn validation_names_the_offending_field() {
        let c = catalog();
        let e = c
            .validate("sleep", &json!({"duration_secs": "five"}))
            .unwrap_err();
        assert_eq!(e.field, "payload.duration_secs");
        let e = c
            .validate("sleep", &json!({"duration_secs": 1, "extra": true}))
            .unwrap_err();
        assert_eq!(e.field, "payload.extra", "unknown fields are rejected: {e}");
        assert!(e.message.contains("extra"), "{e}");
        let e = c
            .validate("sleep", &json!({"duration_secs": 61}))
            .unwrap_err();
        assert_eq!(e.field, "payload.duration_secs");
        assert!(c.validate("sleep", &json!({"duration_secs": 2})).is_ok());
    }

    /// `GET /v1/kinds` serves each payload and result schema on its own, so it must not point into
    /// OpenAPI components (nested types are inlined).
    #[test]
    fn payload_schemas_are_self_contained() {
        for info in catalog().infos() {
            for s in [&info.payload_schema, &info.result_schema] {
                let s = s.to_string();
                assert!(!s.contains("$ref"), "{}: {s}", info.name);
            }
        }
    }

    #[test]
    fn default_limits_are_the_base_configuration() {
        let dir = std::env::temp_dir().join("errand-no-config-here");
        let base =
            errand_core::Settings::load_from(errand_core::settings::Environment::Local, &dir)
                .unwrap();
        assert_eq!(Limits::from(&base.tasks), Limits::default());
    }

    #[test]
    fn an_object_payload_is_not_accepted_in_array_form() {
        let c = catalog();
        for p in [json!([1]), json!(["fail", 0]), json!("x"), json!(null)] {
            let kind = if p.get(0) == Some(&json!("fail")) {
                "chaos"
            } else {
                "sleep"
            };
            let e = c.validate(kind, &p).unwrap_err();
            assert_eq!(e.field, "payload", "{kind} {p}: {e}");
        }
        assert!(
            c.validate("noop", &json!([1])).is_ok(),
            "noop takes any JSON"
        );
    }

    #[test]
    fn every_kind_documents_a_valid_example() {
        let c = catalog();
        for info in c.infos() {
            c.validate(&info.name, &info.example)
                .unwrap_or_else(|e| panic!("{}: {e}", info.name));
            assert!(info.payload_schema.is_object(), "{}", info.name);
        }
    }
}
