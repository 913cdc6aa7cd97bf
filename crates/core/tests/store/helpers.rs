//! What every store test needs: a store on the test's own Redis and key prefix.

use errand_core::{
    TaskStore,
    settings::RedisSettings,
    store::{self, Layout},
};
use errand_testkit::RedisServer;

/// A store on `redis` under `prefix`, so tests sharing one server never see each other's keys.
pub(crate) fn store_on(redis: &RedisServer, prefix: &str) -> TaskStore {
    let conn = store::connect(&RedisSettings {
        url: redis.url(),
        key_prefix: prefix.into(),
        response_timeout_ms: 2000,
        connect_timeout_ms: 1000,
        tls_ca_file: None,
    })
    .unwrap();
    TaskStore::new(conn, Layout::new(prefix))
}
