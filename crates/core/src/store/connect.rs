//! The connection both binaries share: one multiplexed, self-reconnecting connection; and
//! the client behind it, which pub/sub subscriptions open their own connections from.
//!
//! Authentication and TLS come from `redis.url`: `redis://user:password@host:port` logs
//! in with `AUTH user password` (an ACL user) or `AUTH password` (`requirepass`) on every
//! (re)connect, and `rediss://` speaks TLS (rustls), verifying the server's certificate
//! against `redis.tls_ca_file` when set, else the system's trust store.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::StoreError;
use crate::settings::{RedisSettings, redact_url};

impl RedisSettings {
    /// A client for these settings, TLS roots and credentials included, for connections of
    /// their own (pub/sub). Opening it connects to nothing yet.
    pub fn client(&self) -> Result<redis::Client, StoreError> {
        client(self)
    }
}

fn client(settings: &RedisSettings) -> Result<redis::Client, StoreError> {
    let url = settings.url.as_str();
    if url.starts_with("rediss://") {
        // One process-wide rustls provider, whatever else in the tree enables another.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let client = match &settings.tls_ca_file {
        Some(path) if url.starts_with("rediss://") => {
            let pem = std::fs::read(path).map_err(|e| {
                StoreError::Config(format!("redis.tls_ca_file {}: {e}", path.display()))
            })?;
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
        }
        _ => redis::Client::open(url),
    };
    client.map_err(|e| StoreError::Config(format!("redis.url {}: {e}", redact_url(url))))
}

/// Opens the shared, multiplexed, self-reconnecting connection. Lazy: a process starts even
/// while Redis is down and serves 503s until it is back.
pub fn connect(settings: &RedisSettings) -> Result<ConnectionManager, StoreError> {
    let client = client(settings)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(settings.response_timeout()))
        .set_connection_timeout(Some(settings.connect_timeout()))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}
