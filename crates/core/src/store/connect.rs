//! The connection both binaries share, to one Redis or to a Redis Cluster, and the clients
//! pub/sub subscriptions open their own connections from.
//!
//! `redis.url` chooses: `redis://user:password@host:port` is one Redis (a multiplexed,
//! self-reconnecting connection); `redis+cluster://user:password@host1:port1,host2:port2`
//! is a cluster, reached through any of the listed nodes (the client follows MOVED/ASK and
//! topology changes itself). Credentials log in with `AUTH user password` (an ACL user) or
//! `AUTH password` (`requirepass`) on every (re)connect; `rediss://` and
//! `rediss+cluster://` speak TLS (rustls), verifying the server's certificate against
//! `redis.tls_ca_file` when set, else the system's trust store.

use std::{sync::Arc, time::Duration};

use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
};
use tokio::sync::OnceCell;

use super::StoreError;
use crate::settings::{RedisSettings, redact_url};

impl RedisSettings {
    /// Clients for pub/sub connections of their own: the one Redis, or every listed node of
    /// a cluster (a publish on any node reaches subscribers on every node, so a subscriber
    /// moves to the next node when its own is gone). Opening them connects to nothing yet.
    pub fn clients(&self) -> Result<Vec<redis::Client>, StoreError> {
        node_urls(&self.url)?
            .iter()
            .map(|u| client(self, u))
            .collect()
    }

    /// True when `redis.url` names a cluster.
    pub fn is_cluster(&self) -> bool {
        cluster_scheme(&self.url).is_some()
    }
}

/// `rediss`/`redis` when `url` uses a `+cluster` scheme.
fn cluster_scheme(url: &str) -> Option<&'static str> {
    if url.starts_with("redis+cluster://") {
        Some("redis")
    } else if url.starts_with("rediss+cluster://") {
        Some("rediss")
    } else {
        None
    }
}

/// The plain URL of every node `url` names (one, unless it is a cluster URL).
fn node_urls(url: &str) -> Result<Vec<String>, StoreError> {
    let Some(scheme) = cluster_scheme(url) else {
        return Ok(vec![url.to_owned()]);
    };
    let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
    let (userinfo, hosts) = match rest.rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None => ("", rest),
    };
    let hosts = hosts.trim_end_matches('/');
    let urls: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("{scheme}://{userinfo}{h}"))
        .collect();
    if urls.is_empty() {
        return Err(StoreError::Config(format!(
            "redis.url {}: a cluster URL names no node",
            redact_url(url)
        )));
    }
    Ok(urls)
}

fn tls_roots(settings: &RedisSettings, url: &str) -> Result<Option<Vec<u8>>, StoreError> {
    if !url.starts_with("rediss") {
        return Ok(None);
    }
    // One process-wide rustls provider, whatever else in the tree enables another.
    let _ = rustls::crypto::ring::default_provider().install_default();
    settings
        .tls_ca_file
        .as_ref()
        .map(|path| {
            std::fs::read(path).map_err(|e| {
                StoreError::Config(format!("redis.tls_ca_file {}: {e}", path.display()))
            })
        })
        .transpose()
}

fn client(settings: &RedisSettings, url: &str) -> Result<redis::Client, StoreError> {
    let client = match tls_roots(settings, url)? {
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            },
        ),
        None => redis::Client::open(url),
    };
    client.map_err(|e| StoreError::Config(format!("redis.url {}: {e}", redact_url(url))))
}

/// The store's connection: one Redis, or a cluster.
#[derive(Clone)]
pub enum Conn {
    /// One Redis server (or a primary behind a proxy).
    Single(ConnectionManager),
    /// A Redis Cluster: each call goes to the master of its key's slot.
    Cluster(LazyCluster),
}

impl Conn {
    /// Whether each call must stay within one hash slot.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

/// A cluster connection made on first use and remade after a failed attempt, so a process
/// starts while the cluster is down and serves 503s until it is back (as a single Redis
/// connection does).
#[derive(Clone)]
pub struct LazyCluster {
    client: Arc<ClusterClient>,
    /// Set by the first call that connects; a failed attempt leaves it unset for the next.
    conn: Arc<OnceCell<ClusterConnection>>,
}

impl LazyCluster {
    async fn get(&self) -> redis::RedisResult<ClusterConnection> {
        self.conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(lazy) => Box::pin(async move {
                let mut c = lazy.get().await?;
                c.req_packed_command(cmd).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(lazy) => Box::pin(async move {
                let mut c = lazy.get().await?;
                c.req_packed_commands(pipeline, offset, count).await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(_) => 0,
        }
    }
}

/// Opens the shared connection. Lazy: a process starts even while Redis is down and serves
/// 503s until it is back.
pub fn connect(settings: &RedisSettings) -> Result<Conn, StoreError> {
    connector(settings)?.open()
}

/// What [`connect`] opens connections from, for a process that needs one connection per
/// tokio runtime. A connection's (re)connect is a future shared by every call waiting on it,
/// and it spawns its tasks and takes its timers on whichever runtime polls it: shared across
/// runtimes (actix runs one per HTTP worker thread), it can be left polling a timer of a
/// runtime that has already shut down, which panics ("A Tokio 1.x context was found, but it
/// is being shutdown"). Each runtime opens its own instead.
#[derive(Clone)]
pub struct Connector(Opener);

#[derive(Clone)]
enum Opener {
    Single(Arc<(redis::Client, redis::aio::ConnectionManagerConfig)>),
    Cluster(Arc<ClusterClient>),
}

/// Checks `redis.url` (and the TLS files it needs) and prepares connections to it; opening
/// one ([`Connector::open`]) touches no network.
pub fn connector(settings: &RedisSettings) -> Result<Connector, StoreError> {
    if settings.is_cluster() {
        let urls = node_urls(&settings.url)?;
        let mut b = ClusterClient::builder(urls.clone())
            .connection_timeout(settings.connect_timeout())
            .response_timeout(settings.response_timeout())
            // Redirects and reconnects during a failover: the client retries these itself
            // (up to ~2 s), then the caller sees "try again" (a 503).
            .retries(6)
            .min_retry_wait(50)
            .max_retry_wait(500);
        if let Some(pem) = tls_roots(settings, &urls[0])? {
            b = b.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            });
        }
        let client = b.build().map_err(|e| {
            StoreError::Config(format!("redis.url {}: {e}", redact_url(&settings.url)))
        })?;
        return Ok(Connector(Opener::Cluster(Arc::new(client))));
    }
    let client = client(settings, &settings.url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(settings.response_timeout()))
        .set_connection_timeout(Some(settings.connect_timeout()))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    Ok(Connector(Opener::Single(Arc::new((client, config)))))
}

impl Connector {
    /// A new connection, lazy (made on first use, on the runtime that uses it).
    pub fn open(&self) -> Result<Conn, StoreError> {
        Ok(match &self.0 {
            Opener::Single(single) => {
                let (client, config) = &**single;
                Conn::Single(ConnectionManager::new_lazy_with_config(
                    client.clone(),
                    config.clone(),
                )?)
            }
            Opener::Cluster(client) => Conn::Cluster(LazyCluster {
                client: client.clone(),
                conn: Arc::new(OnceCell::new()),
            }),
        })
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match &self.0 {
            Opener::Single(_) => "Connector::Single",
            Opener::Cluster(_) => "Connector::Cluster",
        })
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Single(_) => "Conn::Single",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl std::fmt::Debug for LazyCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyCluster")
            .field("connected", &self.conn.get().is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::node_urls;

    #[test]
    fn a_cluster_url_names_every_node_with_its_credentials() {
        assert_eq!(
            node_urls("redis+cluster://u:p@a:1,b:2/").unwrap(),
            vec!["redis://u:p@a:1", "redis://u:p@b:2"]
        );
        assert_eq!(
            node_urls("rediss+cluster://a:1").unwrap(),
            vec!["rediss://a:1"]
        );
        assert_eq!(node_urls("redis://x:1").unwrap(), vec!["redis://x:1"]);
        assert!(node_urls("redis+cluster://").is_err());
    }
}
