//! The connection both binaries share: one multiplexed, self-reconnecting connection.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::StoreError;
use crate::settings::RedisSettings;

/// Opens the shared, multiplexed, self-reconnecting connection. Lazy: a process starts even
/// while Redis is down and serves 503s until it is back.
pub fn connect(settings: &RedisSettings) -> Result<ConnectionManager, StoreError> {
    let client = redis::Client::open(settings.url.as_str())?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(settings.response_timeout()))
        .set_connection_timeout(Some(settings.connect_timeout()))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}
