//! The kinds this api accepts: the registry in Redis (`errand_core::store::Registry`, written
//! by the workers), held in memory as a snapshot with each payload schema compiled once.
//!
//! A submit reads the snapshot only; a kind the snapshot does not know makes one fresh read
//! first (coalesced across requests), so a kind registered a moment ago is accepted at once.
//! Otherwise the snapshot is refreshed every `api.kinds_refresh_ms` by a background loop.
//! The first read seeds errand's built-in kinds into the registry (only where a kind has
//! none), so a fresh deployment accepts them before its first worker is up.
//!
//! The built-in kinds carry checks a JSON Schema cannot state (a URL's destination policy,
//! header syntax): where the registered definition is the one this api's own catalog would
//! register (same digest), those run first, as they always did; the schema runs for every
//! kind.

use std::{
    any::Any,
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    sync::{Arc, Mutex, OnceLock, RwLock},
    time::Duration,
};

use errand_core::{
    Settings, TaskStore,
    store::{CurrentKind, KindDefinition, StoreError},
};
use errand_kinds::{Catalog, Invalid, Limits};
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

/// A kind that the registry knows, ready to validate.
pub(crate) struct Kind {
    /// Its definition and who runs it.
    pub current: CurrentKind,
    /// The payload schema, compiled; `Err` when it does not compile (submits are refused
    /// with the reason).
    validator: Result<Arc<jsonschema::Validator>, String>,
    /// The result schema, compiled: what an HTTP worker's result must meet.
    result_validator: Result<Arc<jsonschema::Validator>, String>,
    /// Whether this api's own catalog has this very definition: its typed checks apply.
    builtin: bool,
}

impl Kind {
    /// The definition that validates.
    pub(crate) fn definition(&self) -> &KindDefinition {
        &self.current.kind.definition
    }

    /// Whether a submit may leave the payload out (it stands for `{}`).
    pub(crate) fn payload_optional(&self, kinds: &Kinds) -> bool {
        kinds
            .check(self, &Value::Object(Default::default()))
            .is_ok()
    }
}

/// One reading of the registry.
pub(crate) struct Snapshot {
    /// By canonical name.
    pub kinds: BTreeMap<String, Arc<Kind>>,
    /// Alias -> canonical name.
    aliases: BTreeMap<String, String>,
    /// What is built from these kinds on first use (the OpenAPI documents, see
    /// `openapi::documents`), typed by its one user so the registry need not know it.
    derived: OnceLock<Arc<dyn Any + Send + Sync>>,
    /// Whether this came from Redis (the empty one before the first read did not).
    loaded: bool,
}

impl Snapshot {
    fn empty() -> Self {
        Self {
            kinds: BTreeMap::new(),
            aliases: BTreeMap::new(),
            derived: OnceLock::new(),
            loaded: false,
        }
    }

    /// The kind `name` names, canonical or alias.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Kind>> {
        self.kinds
            .get(name)
            .or_else(|| self.aliases.get(name).and_then(|n| self.kinds.get(n)))
    }

    /// The canonical name for `name`, when it names a kind.
    pub(crate) fn resolve(&self, name: &str) -> Option<&str> {
        self.get(name).map(|k| k.definition().name.as_str())
    }

    /// The kind `name` names; unknown, a 422 naming `kind` that lists the known ones.
    pub(crate) fn kind(&self, name: &str) -> Result<&Arc<Kind>, ApiError> {
        self.get(name).ok_or_else(|| unknown(self, name))
    }

    /// Canonical names, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }
}

/// The process's view of the registry, shared by every HTTP worker thread.
pub(crate) struct Kinds {
    /// The built-in kinds as this api would register them (`tasks.*` limits).
    builtin: Catalog,
    /// Their digests, by name.
    builtin_digests: HashMap<String, String>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Compiled schemas by digest, kept across snapshots.
    compiled: Mutex<HashMap<String, Result<Arc<jsonschema::Validator>, String>>>,
    /// One read of the registry at a time.
    reading: tokio::sync::Mutex<()>,
    /// Reads started so far: a miss that finds a read started after it asked takes that
    /// read's answer instead of reading again (concurrent misses share one read).
    started: std::sync::atomic::AtomicU64,
    /// Whether the built-in kinds were seeded: the first read does it, so no submit can
    /// meet a registry without them.
    seeded: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kinds")
            .field("kinds", &self.current().kinds.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Kinds {
    pub(crate) fn new(settings: &Settings) -> Self {
        let builtin = Catalog::new(Limits::from(&settings.tasks));
        let builtin_digests = builtin
            .definitions()
            .into_iter()
            .map(|d| (d.name.clone(), d.digest()))
            .collect();
        Self {
            builtin,
            builtin_digests,
            snapshot: RwLock::new(Arc::new(Snapshot::empty())),
            compiled: Mutex::default(),
            reading: tokio::sync::Mutex::new(()),
            started: std::sync::atomic::AtomicU64::new(0),
            seeded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The snapshot as it is (possibly not yet read).
    pub(crate) fn current(&self) -> Arc<Snapshot> {
        self.snapshot.read().expect("kinds lock").clone()
    }

    /// The snapshot, read from Redis first if it never was.
    pub(crate) async fn snapshot(&self, store: &TaskStore) -> Result<Arc<Snapshot>, StoreError> {
        let s = self.current();
        if s.loaded {
            return Ok(s);
        }
        self.refresh(store).await
    }

    /// A snapshot that knows every kind in `names` if the registry does: read again when
    /// the one in memory misses one (a kind registered a moment ago). Concurrent misses
    /// share one read.
    pub(crate) async fn knowing<'a>(
        &self,
        store: &TaskStore,
        mut names: impl Iterator<Item = &'a str>,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let s = self.snapshot(store).await?;
        if names.all(|n| s.get(n).is_some()) {
            return Ok(s);
        }
        self.refresh(store).await
    }

    /// Checks `payload` against `kind`: the built-in kind's own checks where they apply,
    /// then its registered JSON Schema.
    pub(crate) fn check(&self, kind: &Kind, payload: &Value) -> Result<(), Invalid> {
        let name = &kind.definition().name;
        if kind.builtin {
            self.builtin.validate(name, payload)?;
        }
        match &kind.validator {
            // `is_valid` stops at the first failure and builds no error: the cheap path
            // for what nearly every submit is. Only a refusal pays for the error.
            Ok(v) if v.is_valid(payload) => Ok(()),
            Ok(v) => match v.iter_errors(payload).next() {
                None => Ok(()),
                Some(e) => Err(invalid("payload", &e)),
            },
            Err(why) => Err(Invalid::new(
                "kind",
                format!("the registered schema of kind `{name}` cannot be used: {why}"),
            )),
        }
    }

    /// Checks an HTTP worker's `result` for `kind` against its registered result schema;
    /// the error's field is a path under `result`.
    pub(crate) fn check_result(kind: &Kind, result: &Value) -> Result<(), Invalid> {
        match &kind.result_validator {
            Ok(v) if v.is_valid(result) => Ok(()),
            Ok(v) => match v.iter_errors(result).next() {
                None => Ok(()),
                Some(e) => Err(invalid("result", &e)),
            },
            // A result schema that does not compile cannot refuse anything.
            Err(_) => Ok(()),
        }
    }

    /// What `build` makes of the kinds registered now, built once per snapshot (a kind a
    /// worker registers makes a new snapshot, so it is built again). One type per process:
    /// the OpenAPI documents.
    pub(crate) async fn derived<T: Any + Send + Sync>(
        &self,
        store: &TaskStore,
        build: impl FnOnce(&Snapshot, &Self) -> T,
    ) -> Result<Arc<T>, StoreError> {
        let s = self.snapshot(store).await?;
        let any = s.derived.get_or_init(|| Arc::new(build(&s, self))).clone();
        Ok(any
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("one derived type per snapshot")))
    }

    /// Reads the registry and makes it the snapshot: the answer is as fresh as the call.
    /// Reads are one at a time, and a call that finds a read started after it was made
    /// (and ended, since it held the lock) takes that read's answer: concurrent callers
    /// share one read.
    pub(crate) async fn refresh(&self, store: &TaskStore) -> Result<Arc<Snapshot>, StoreError> {
        let asked = self.started.load(std::sync::atomic::Ordering::Acquire);
        let _one = self.reading.lock().await;
        if self.started.load(std::sync::atomic::Ordering::Acquire) > asked {
            return Ok(self.current());
        }
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if !self.seeded.load(std::sync::atomic::Ordering::Relaxed) {
            store
                .register_kinds(&self.builtin.definitions(), "errand-api", false)
                .await?;
            self.seeded
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let registry = store.kind_registry().await?;
        let mut compiled = self.compiled.lock().expect("kinds lock");
        let mut kinds = BTreeMap::new();
        let mut aliases = BTreeMap::new();
        for (name, current) in registry.current() {
            let digest = current.kind.digest.clone();
            let validator = compiled
                .entry(digest.clone())
                .or_insert_with(|| compile(&current.kind.definition.payload_schema))
                .clone();
            let result_validator = compiled
                .entry(format!("result:{digest}"))
                .or_insert_with(|| compile(&current.kind.definition.result_schema))
                .clone();
            for a in &current.kind.definition.aliases {
                aliases.insert(a.clone(), name.clone());
            }
            let builtin = self.builtin_digests.get(&name) == Some(&digest);
            kinds.insert(
                name,
                Arc::new(Kind {
                    current,
                    validator,
                    result_validator,
                    builtin,
                }),
            );
        }
        // A kind's own name wins over another kind's alias.
        aliases.retain(|a, _| !kinds.contains_key(a));
        let live: std::collections::HashSet<&str> = kinds
            .values()
            .map(|k| k.current.kind.digest.as_str())
            .collect();
        compiled.retain(|d, _| live.contains(d.strip_prefix("result:").unwrap_or(d)));
        drop(compiled);
        let s = Arc::new(Snapshot {
            kinds,
            aliases,
            derived: OnceLock::new(),
            loaded: true,
        });
        *self.snapshot.write().expect("kinds lock") = s.clone();
        Ok(s)
    }

    /// Reads the registry every `every` (seeding the built-in kinds on the first read that
    /// works), until `stop`.
    pub(crate) async fn keep_fresh(
        self: Arc<Self>,
        store: TaskStore,
        every: Duration,
        stop: CancellationToken,
    ) {
        loop {
            let r = tokio::select! {
                r = self.refresh(&store) => r,
                () = stop.cancelled() => return,
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "kind registry not read; trying again");
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

pub(crate) fn compile(schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
    jsonschema::draft202012::new(schema)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn unknown(s: &Snapshot, name: &str) -> ApiError {
    let known: Vec<&str> = s.names().collect();
    let list = if known.is_empty() {
        "none is registered yet (a worker registers the kinds it runs when it starts)".to_owned()
    } else {
        format!("known kinds: {}", known.join(", "))
    };
    ApiError::invalid(
        "kind",
        format!("unknown task kind `{name}`; {list} (GET /v1/kinds)"),
    )
}

/// A schema error as a refusal: the field is the path (under `root`) of the value at fault (with
/// the property a `required` or `additionalProperties` names), the detail the validator's
/// words, cut short.
fn invalid(root: &str, e: &jsonschema::ValidationError<'_>) -> Invalid {
    let mut field = String::from(root);
    for seg in e.instance_path().segments() {
        match seg {
            jsonschema::paths::LocationSegment::Property(p) => {
                field.push('.');
                field.push_str(&p);
            }
            jsonschema::paths::LocationSegment::Index(i) => {
                let _ = write!(field, "[{i}]");
            }
        }
    }
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            if let Some(u) = unexpected.first() {
                field.push('.');
                field.push_str(u);
            }
        }
        ValidationErrorKind::Required { property } => {
            if let Some(p) = property.as_str() {
                field.push('.');
                field.push_str(p);
            }
        }
        _ => {}
    }
    let mut detail = e.to_string();
    if detail.len() > 300 {
        let mut cut = 300;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
        detail.push('…');
    }
    Invalid::new(field, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(schema: Value, payload: Value) -> Invalid {
        let v = compile(&schema).unwrap();
        let e = v.iter_errors(&payload).next().expect("invalid");
        invalid("payload", &e)
    }

    #[test]
    fn schema_errors_name_the_field() {
        let schema = json!({
            "type": "object",
            "required": ["rows"],
            "additionalProperties": false,
            "properties": {
                "rows": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}},
                "sep": {"type": "string", "maxLength": 1}
            }
        });
        assert_eq!(refusal(schema.clone(), json!({})).field, "payload.rows");
        assert_eq!(
            refusal(schema.clone(), json!({"rows": [], "extra": 1})).field,
            "payload.extra"
        );
        let e = refusal(schema.clone(), json!({"rows": [{"n": 1}, {"n": "two"}]}));
        assert_eq!(e.field, "payload.rows[1].n");
        assert!(e.message.contains("integer"), "{e}");
        assert_eq!(
            refusal(schema, json!({"rows": [], "sep": ";;"})).field,
            "payload.sep"
        );
    }
}
