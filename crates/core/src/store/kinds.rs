//! The kind registry: what each task kind is (schemas, summary, aliases), written by the
//! workers that run it, read by every api process to validate submits without knowing the
//! kinds' code (docs/writing-kinds.md).
//!
//! A definition is stored once per digest of its content, so two workers with the same code
//! write the same field, and a rolling deploy briefly holds two. Which one validates is
//! [`Registry::current`]'s rule: the schema of the newest live worker that serves the kind;
//! with none live, the last one registered. Definitions outlive their workers, so an api
//! started while no worker runs still validates the kinds registered before.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::{StoreError, TaskStore, WorkerInfo};

/// What a kind is, as the worker that runs it describes it: everything the api needs to
/// accept, document and list it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindDefinition {
    /// The canonical name: what submits use and records carry.
    pub name: String,
    /// Other names a submit may use (stored as the canonical name).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One line saying what the kind does.
    #[serde(default)]
    pub summary: String,
    /// Whether running it twice has the effect of running it once.
    #[serde(default)]
    pub idempotent: bool,
    /// JSON Schema (2020-12) a payload must meet; the api validates submits against it.
    pub payload_schema: Value,
    /// JSON Schema of a successful run's result.
    #[serde(default = "any_schema")]
    pub result_schema: Value,
    /// A payload the kind accepts, for the docs.
    #[serde(default)]
    pub example: Value,
    /// The payload schema's component name in the OpenAPI document (`SleepPayload`).
    #[serde(default)]
    pub payload_name: String,
    /// The result schema's component name in the OpenAPI document (`SleepResult`).
    #[serde(default)]
    pub result_name: String,
}

fn any_schema() -> Value {
    Value::Object(Default::default())
}

impl KindDefinition {
    /// A short digest of the content (keys in order): equal definitions have equal
    /// digests whatever wrote them, so the registry holds each schema once.
    pub fn digest(&self) -> String {
        let mut s = String::new();
        canonical(
            &serde_json::to_value(self).expect("a definition serializes"),
            &mut s,
        );
        let h = Sha256::digest(s.as_bytes());
        h[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// JSON with object keys sorted at every level, whatever map type serde_json was built with.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// One stored definition and who put it there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredKind {
    /// The definition.
    pub definition: KindDefinition,
    /// Its [`digest`](KindDefinition::digest).
    pub digest: String,
    /// When this digest was first registered.
    pub registered_at: DateTime<Utc>,
    /// The worker process (or `errand-api` for the built-in kinds it seeds) that first
    /// registered it.
    pub registered_by: String,
}

/// A kind a worker process runs, as its heartbeat lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerKind {
    /// The kind's canonical name.
    pub name: String,
    /// The digest of the definition this worker registered.
    pub digest: String,
}

/// Everything the registry holds, read in one call.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Every stored definition, by name then digest.
    pub definitions: BTreeMap<String, BTreeMap<String, RegisteredKind>>,
    /// The digest each kind was last registered with.
    pub latest: BTreeMap<String, String>,
    /// The live worker processes, with the kinds they run.
    pub workers: Vec<WorkerInfo>,
}

/// A kind as it stands now: the definition that validates it and the workers that run it.
#[derive(Debug, Clone)]
pub struct CurrentKind {
    /// The definition that validates submits.
    pub kind: RegisteredKind,
    /// Names of the live workers that run this kind, with the digest each registered.
    pub workers: Vec<WorkerKind>,
    /// The queues those workers serve, in name order.
    pub queues: Vec<String>,
}

impl CurrentKind {
    /// Whether live workers run more than one definition of this kind (a rolling deploy).
    pub fn schemas_differ(&self) -> bool {
        self.workers.iter().any(|w| w.digest != self.kind.digest)
    }
}

impl Registry {
    /// Each kind's current definition, by name. The rule, in order: the definition of the
    /// most recently started live worker that runs the kind (a deploy rolls forward, and a
    /// rollback rolls back as soon as the newer workers are gone); with no live worker, the
    /// last one registered. Workers that are stopping do not count.
    pub fn current(&self) -> BTreeMap<String, CurrentKind> {
        let mut out = BTreeMap::new();
        for (name, by_digest) in &self.definitions {
            let serving: Vec<&WorkerInfo> = self
                .workers
                .iter()
                .filter(|w| w.kinds.iter().any(|k| &k.name == name))
                .collect();
            let newest = serving
                .iter()
                .filter(|w| !w.stopping)
                .filter_map(|w| {
                    let k = w.kinds.iter().find(|k| &k.name == name)?;
                    by_digest.get(&k.digest).map(|d| (w.started_at, &w.name, d))
                })
                .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
                .map(|(_, _, d)| d);
            let chosen = newest.or_else(|| {
                self.latest
                    .get(name)
                    .and_then(|digest| by_digest.get(digest))
            });
            let Some(kind) = chosen.or_else(|| by_digest.values().max_by_key(|d| d.registered_at))
            else {
                continue;
            };
            let queues: BTreeSet<String> = serving
                .iter()
                .flat_map(|w| w.queues.iter().map(|q| q.name.clone()))
                .collect();
            out.insert(
                name.clone(),
                CurrentKind {
                    kind: kind.clone(),
                    workers: serving
                        .iter()
                        .map(|w| WorkerKind {
                            name: w.name.clone(),
                            digest: w
                                .kinds
                                .iter()
                                .find(|k| &k.name == name)
                                .map(|k| k.digest.clone())
                                .unwrap_or_default(),
                        })
                        .collect(),
                    queues: queues.into_iter().collect(),
                },
            );
        }
        out
    }
}

fn field(name: &str, digest: &str) -> String {
    format!("{name}\n{digest}")
}

impl TaskStore {
    /// Registers `defs` as run by `by`. `latest`: make each the kind's last registration
    /// (a worker starting); otherwise only where the kind has none (the api seeding the
    /// built-in kinds, a heartbeat putting back a registry that was flushed). Definitions of
    /// the same kinds that are neither latest nor run by a live worker are dropped.
    pub async fn register_kinds(
        &self,
        defs: &[KindDefinition],
        by: &str,
        latest: bool,
    ) -> Result<(), StoreError> {
        if defs.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        for d in defs {
            let digest = d.digest();
            let stored = RegisteredKind {
                definition: d.clone(),
                digest: digest.clone(),
                registered_at: now,
                registered_by: by.to_owned(),
            };
            pipe.cmd("HSETNX")
                .arg(self.layout.kind_definitions())
                .arg(field(&d.name, &digest))
                .arg(serde_json::to_string(&stored)?)
                .ignore();
            pipe.cmd(if latest { "HSET" } else { "HSETNX" })
                .arg(self.layout.kind_latest())
                .arg(&d.name)
                .arg(&digest)
                .ignore();
        }
        pipe.query_async::<()>(&mut c).await?;
        if latest {
            self.prune_kinds(defs.iter().map(|d| d.name.as_str()))
                .await?;
        }
        Ok(())
    }

    /// Drops the definitions of `names` that are neither the latest nor run by a live
    /// worker: what a finished rolling deploy leaves behind.
    async fn prune_kinds<'a>(
        &self,
        names: impl Iterator<Item = &'a str>,
    ) -> Result<(), StoreError> {
        let names: BTreeSet<&str> = names.collect();
        let registry = self.kind_registry().await?;
        let mut stale = Vec::new();
        for (name, by_digest) in &registry.definitions {
            if !names.contains(name.as_str()) {
                continue;
            }
            for digest in by_digest.keys() {
                let latest = registry.latest.get(name) == Some(digest);
                let served = registry.workers.iter().any(|w| {
                    w.kinds
                        .iter()
                        .any(|k| &k.name == name && &k.digest == digest)
                });
                if !latest && !served {
                    stale.push(field(name, digest));
                }
            }
        }
        if !stale.is_empty() {
            let mut c = self.conn.clone();
            redis::cmd("HDEL")
                .arg(self.layout.kind_definitions())
                .arg(stale)
                .query_async::<()>(&mut c)
                .await?;
        }
        Ok(())
    }

    /// The whole registry: definitions, latest digests and live workers.
    pub async fn kind_registry(&self) -> Result<Registry, StoreError> {
        let mut c = self.conn.clone();
        let (defs, latest): (BTreeMap<String, String>, BTreeMap<String, String>) = redis::pipe()
            .cmd("HGETALL")
            .arg(self.layout.kind_definitions())
            .cmd("HGETALL")
            .arg(self.layout.kind_latest())
            .query_async(&mut c)
            .await?;
        let mut definitions: BTreeMap<String, BTreeMap<String, RegisteredKind>> = BTreeMap::new();
        for (f, json) in defs {
            let Some((name, digest)) = f.split_once('\n') else {
                continue;
            };
            // A definition this version cannot read is skipped, not fatal: the other kinds
            // still validate (and the worker that wrote it registers again).
            match serde_json::from_str::<RegisteredKind>(&json) {
                Ok(k) => {
                    definitions
                        .entry(name.to_owned())
                        .or_default()
                        .insert(digest.to_owned(), k);
                }
                Err(e) => tracing::warn!(kind = name, error = %e, "unreadable kind definition"),
            }
        }
        Ok(Registry {
            definitions,
            latest,
            workers: self.workers().await?,
        })
    }

    /// Removes kind `name` from the registry: its definitions and its latest digest.
    /// Returns whether it was registered. The caller checks that no live worker runs it
    /// (their heartbeats would register it again).
    pub async fn remove_kind(&self, name: &str) -> Result<bool, StoreError> {
        let registry = self.kind_registry().await?;
        let Some(by_digest) = registry.definitions.get(name) else {
            let mut c = self.conn.clone();
            let n: u64 = redis::cmd("HDEL")
                .arg(self.layout.kind_latest())
                .arg(name)
                .query_async(&mut c)
                .await?;
            return Ok(n > 0);
        };
        let mut c = self.conn.clone();
        let fields: Vec<String> = by_digest.keys().map(|d| field(name, d)).collect();
        redis::pipe()
            .cmd("HDEL")
            .arg(self.layout.kind_definitions())
            .arg(fields)
            .ignore()
            .cmd("HDEL")
            .arg(self.layout.kind_latest())
            .arg(name)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WorkerQueue;
    use serde_json::json;

    fn def(name: &str, max: u64) -> KindDefinition {
        KindDefinition {
            name: name.into(),
            aliases: vec![],
            summary: "s".into(),
            idempotent: true,
            payload_schema: json!({"type": "object", "properties": {"n": {"maximum": max}}}),
            result_schema: json!({}),
            example: json!({"n": 1}),
            payload_name: "P".into(),
            result_name: "R".into(),
        }
    }

    fn worker(name: &str, started: i64, kinds: &[(&str, &KindDefinition)]) -> WorkerInfo {
        WorkerInfo {
            name: name.into(),
            host: "h".into(),
            pid: 1,
            queues: vec![WorkerQueue {
                name: format!("q-{name}"),
                concurrency: 1,
            }],
            running: 0,
            running_ids: vec![],
            stopping: false,
            started_at: DateTime::from_timestamp(started, 0).unwrap(),
            last_seen: DateTime::from_timestamp(started, 0).unwrap(),
            kinds: kinds
                .iter()
                .map(|(n, d)| WorkerKind {
                    name: (*n).into(),
                    digest: d.digest(),
                })
                .collect(),
        }
    }

    fn registry(defs: &[&KindDefinition], latest: &KindDefinition, w: Vec<WorkerInfo>) -> Registry {
        let mut r = Registry::default();
        for d in defs {
            r.definitions.entry(d.name.clone()).or_default().insert(
                d.digest(),
                RegisteredKind {
                    definition: (*d).clone(),
                    digest: d.digest(),
                    registered_at: Utc::now(),
                    registered_by: "t".into(),
                },
            );
        }
        r.latest.insert(latest.name.clone(), latest.digest());
        r.workers = w;
        r
    }

    #[test]
    fn digests_ignore_key_order_and_tell_schemas_apart() {
        let a = def("k", 5);
        let mut b = a.clone();
        b.payload_schema = json!({"properties": {"n": {"maximum": 5}}, "type": "object"});
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), def("k", 6).digest());
        assert_eq!(a.digest().len(), 16);
    }

    #[test]
    fn the_newest_live_worker_decides_then_the_latest_registration() {
        let (old, new) = (def("k", 5), def("k", 6));
        // Rolling deploy: the old worker started first, the new one later; the latest
        // registration says old (a heartbeat wrote it back): the newest live worker wins.
        let r = registry(
            &[&old, &new],
            &old,
            vec![
                worker("w1", 100, &[("k", &old)]),
                worker("w2", 200, &[("k", &new)]),
            ],
        );
        let c = &r.current()["k"];
        assert_eq!(c.kind.digest, new.digest());
        assert!(c.schemas_differ());
        assert_eq!(c.queues, vec!["q-w1", "q-w2"]);
        // Rolled back: the new worker is gone, the old one decides.
        let r = registry(&[&old, &new], &new, vec![worker("w1", 100, &[("k", &old)])]);
        assert_eq!(r.current()["k"].kind.digest, old.digest());
        // No worker at all: the latest registration.
        let r = registry(&[&old, &new], &new, vec![]);
        let c = &r.current()["k"];
        assert_eq!(c.kind.digest, new.digest());
        assert!(c.workers.is_empty() && !c.schemas_differ());
        // A stopping worker serves but does not decide.
        let mut stopping = worker("w2", 200, &[("k", &new)]);
        stopping.stopping = true;
        let r = registry(
            &[&old, &new],
            &old,
            vec![worker("w1", 100, &[("k", &old)]), stopping],
        );
        assert_eq!(r.current()["k"].kind.digest, old.digest());
    }

    #[tokio::test]
    async fn registrations_round_trip_and_prune_what_nothing_runs() {
        let redis = errand_testkit::RedisServer::start().await;
        let conn = crate::store::connect(&crate::settings::RedisSettings {
            url: redis.url(),
            key_prefix: "kinds".into(),
            response_timeout_ms: 5000,
            connect_timeout_ms: 2000,
            tls_ca_file: None,
        })
        .unwrap();
        let store = TaskStore::new(conn, crate::store::Layout::new("kinds"));
        let (v1, v2) = (def("k", 5), def("k", 6));
        store
            .register_kinds(std::slice::from_ref(&v1), "w1", true)
            .await
            .unwrap();
        // Seeding does not replace a registration.
        store
            .register_kinds(std::slice::from_ref(&v2), "api", false)
            .await
            .unwrap();
        let r = store.kind_registry().await.unwrap();
        assert_eq!(r.latest["k"], v1.digest());
        assert_eq!(r.definitions["k"].len(), 2);
        assert_eq!(r.definitions["k"][&v1.digest()].registered_by, "w1");
        // A worker starting with v2 makes it latest; v1, latest no more and run by no live
        // worker, goes.
        store
            .register_kinds(std::slice::from_ref(&v2), "w2", true)
            .await
            .unwrap();
        let r = store.kind_registry().await.unwrap();
        assert_eq!(r.latest["k"], v2.digest());
        assert_eq!(
            r.definitions["k"].keys().collect::<Vec<_>>(),
            vec![&v2.digest()]
        );
        assert_eq!(r.current()["k"].kind.definition, v2);
        assert!(store.remove_kind("k").await.unwrap());
        assert!(!store.remove_kind("k").await.unwrap());
        let r = store.kind_registry().await.unwrap();
        assert!(r.definitions.is_empty() && r.latest.is_empty());
    }
}
