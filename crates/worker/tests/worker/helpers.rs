//! What the worker's suites share: reading task records (end to end), and settings, submits
//! and reads through errand-core's store for the in-process tests.

use std::path::Path;

use chrono::{DateTime, Utc};
use errand_core::{
    Settings, TaskStore,
    settings::{Environment, QueueSettings},
    store::{self, Layout, NewTask, Submitted},
    task::{TaskId, TaskRecord},
};
use errand_testkit::RedisServer;
use serde_json::Value;

/// A record's RFC 3339 time field.
pub(crate) fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

/// A record's `id`.
pub(crate) fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// The embedded defaults, pointed at `redis`, serving queue `default` with the `chaos`
/// kind on.
pub(crate) fn settings(redis: &RedisServer) -> Settings {
    let mut s = Settings::load_from(Environment::Local, Path::new("/nonexistent"))
        .expect("the embedded settings load");
    s.redis.url = redis.url();
    s.redis.key_prefix = "drain".into();
    s.tasks.diagnostic_kinds = true;
    s.worker.queues = vec![QueueSettings {
        name: "default".into(),
        concurrency: 4,
    }];
    s.worker.metrics_addr = None;
    s
}

pub(crate) fn store_for(s: &Settings) -> TaskStore {
    let conn = store::connect(&s.redis).expect("connect");
    TaskStore::new(conn, Layout::new(&s.redis.key_prefix))
}

pub(crate) async fn submit(
    store: &TaskStore,
    kind: &str,
    payload: Value,
    max_attempts: u32,
    timeout_secs: Option<u64>,
) -> TaskId {
    let id = TaskId::generate();
    let task = NewTask {
        id: id.clone(),
        kind: kind.into(),
        queue: "default".into(),
        payload,
        max_attempts,
        timeout_secs,
        result_ttl_secs: 600,
        run_at: None,
        callback: None,
        traceparent: None,
        unique: None,
        flow: Default::default(),
        step: None,
    };
    match store.submit(task, Utc::now()).await.expect("submit") {
        Submitted::Created(_) => id,
        Submitted::Existing(r) | Submitted::Duplicate(r) => {
            panic!("a fresh id already existed: {r:?}")
        }
    }
}

pub(crate) async fn record(store: &TaskStore, id: &TaskId) -> TaskRecord {
    store
        .get(id)
        .await
        .expect("read")
        .expect("the record exists")
}
