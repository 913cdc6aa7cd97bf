//! A real Redis Cluster on loopback for tests: 3 masters and 3 replicas
//! (`redis-server --cluster-enabled yes`, joined by `redis-cli --cluster create
//! --cluster-replicas 1`), and the faults the cluster tests inject (a master killed, its
//! replica promoted).

use std::{process::Stdio, time::Duration};

use tokio::process::{Child, Command};

use crate::{free_port, wait_for, wait_own_redis};

/// One redis-server of the cluster, with its own directory (nodes.conf, data).
#[derive(Debug)]
pub struct ClusterNode {
    /// Its client port (the cluster bus is this + 10000).
    pub port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

/// A real Redis Cluster on loopback, torn down on drop.
#[derive(Debug)]
pub struct RedisCluster {
    /// Masters first, then their replicas, as `--cluster create` was given them.
    pub nodes: Vec<ClusterNode>,
}

/// Node timeout: how long a master may be silent before its replica takes over.
pub const NODE_TIMEOUT_MS: u64 = 1000;

impl RedisCluster {
    /// Starts 6 nodes and forms the cluster; returns once every node says `cluster_state:ok`.
    pub async fn start() -> Self {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let dir = tempfile::tempdir().expect("tempdir");
            // A probed port (or its bus port, +10000) may be taken before the node binds it:
            // then the node exits at once and is started again on another.
            let mut attempt = 0;
            let (port, child) = loop {
                attempt += 1;
                let port = free_port();
                let mut child = Command::new(&bin)
                    .args([
                        "--port",
                        &port.to_string(),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                    ])
                    .args(["--appendonly", "no", "--cluster-enabled", "yes"])
                    .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                    // A replica may take over however long ago it last heard from its master:
                    // on a loaded test machine the link can look stale when the master dies.
                    .args(["--cluster-replica-validity-factor", "0"])
                    .args(["--enable-debug-command", "local"])
                    .arg("--cluster-config-file")
                    .arg(dir.path().join("nodes.conf"))
                    .arg("--dir")
                    .arg(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start `{bin}` ({e})"));
                match wait_own_redis(&mut child, port, None, true).await {
                    Ok(()) => break (port, child),
                    Err(status) if attempt < 5 => {
                        eprintln!("cluster node on port {port} exited ({status}); another port");
                    }
                    Err(status) => panic!("cluster node on port {port} exited ({status})"),
                }
            };
            nodes.push(ClusterNode {
                port,
                child: Some(child),
                _dir: dir,
            });
        }
        let cluster = Self { nodes };
        let cli = std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
        let status = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .unwrap_or_else(|e| panic!("cannot run `{cli}` ({e})"));
        assert!(status.success(), "redis-cli --cluster create failed");
        cluster.wait_ok().await;
        cluster.wait_replicas_synced().await;
        cluster
    }

    /// Waits until every live node reports `cluster_state:ok` and agrees on 3 masters
    /// serving every slot.
    pub async fn wait_ok(&self) {
        for n in self.nodes.iter().filter(|n| n.child.is_some()) {
            let url = format!("redis://127.0.0.1:{}", n.port);
            wait_for("the cluster to be ok", Duration::from_secs(90), || {
                let url = url.clone();
                async move {
                    let info = info_of(&url, "CLUSTER", "INFO").await?;
                    (info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384"))
                        .then_some(())
                }
            })
            .await;
        }
    }

    /// Waits until the three replicas' links to their masters are up (their first sync
    /// done): only then does a failover keep what the master had.
    pub async fn wait_replicas_synced(&self) {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect();
        wait_for("3 replicas to sync", Duration::from_secs(60), || {
            let urls = urls.clone();
            async move {
                let mut synced = 0;
                for url in urls {
                    let info = info_of(&url, "INFO", "replication").await?;
                    if info.contains("master_link_status:up") {
                        synced += 1;
                    }
                }
                (synced >= 3).then_some(())
            }
        })
        .await;
    }

    /// `redis+cluster://` naming every node (errand's `redis.url` for a cluster).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// A cluster client for the tests' own reads.
    pub async fn conn(&self) -> redis::cluster_async::ClusterConnection {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect();
        redis::cluster::ClusterClient::new(urls)
            .expect("cluster client")
            .get_async_connection()
            .await
            .expect("cluster connection")
    }

    /// The ports of the masters, each with the slot ranges it serves, as `CLUSTER SHARDS`
    /// (or SLOTS) reports them now.
    pub async fn masters(&self) -> Vec<(u16, Vec<(u16, u16)>)> {
        let n = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node");
        let c = redis::Client::open(format!("redis://127.0.0.1:{}", n.port)).unwrap();
        let mut c = c.get_multiplexed_async_connection().await.unwrap();
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut c)
            .await
            .unwrap();
        let mut out: Vec<(u16, Vec<(u16, u16)>)> = Vec::new();
        for s in slots {
            let redis::Value::Array(items) = s else {
                continue;
            };
            let lo: u16 = redis::from_redis_value(items[0].clone()).unwrap();
            let hi: u16 = redis::from_redis_value(items[1].clone()).unwrap();
            let redis::Value::Array(master) = items[2].clone() else {
                continue;
            };
            let port: u16 = redis::from_redis_value(master[1].clone()).unwrap();
            match out.iter_mut().find(|(p, _)| *p == port) {
                Some((_, r)) => r.push((lo, hi)),
                None => out.push((port, vec![(lo, hi)])),
            }
        }
        out.sort();
        out
    }

    /// The port of the master serving `key`'s slot now.
    pub async fn master_of(&self, key: &str) -> u16 {
        let slot = slot_of(key);
        self.masters()
            .await
            .into_iter()
            .find(|(_, ranges)| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&slot)))
            .map(|(p, _)| p)
            .expect("every slot is served")
    }

    /// `n` queue names (`q0`, `q1`, …) whose hash tags land on `n` different masters.
    pub async fn queues_on_distinct_masters(&self, n: usize) -> Vec<String> {
        let masters = self.masters().await;
        let owner = |q: &str| {
            let slot = slot_of(&format!("{{{q}}}"));
            masters
                .iter()
                .find(|(_, r)| r.iter().any(|(lo, hi)| (*lo..=*hi).contains(&slot)))
                .map(|(p, _)| *p)
        };
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for i in 0.. {
            let q = format!("q{i}");
            let o = owner(&q);
            if !seen.contains(&o) {
                seen.push(o);
                out.push(q);
                if out.len() == n {
                    break;
                }
            }
        }
        out
    }

    /// SIGKILLs the node on `port`.
    pub async fn kill(&mut self, port: u16) {
        let n = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node on that port");
        if let Some(mut c) = n.child.take() {
            let _ = c.kill().await;
        }
    }
}

/// `cmd arg` on the node at `url` (an INFO-like text reply), or `None` while it does not
/// answer.
async fn info_of(url: &str, cmd: &str, arg: &str) -> Option<String> {
    let c = redis::Client::open(url).ok()?;
    let mut c = c.get_multiplexed_async_connection().await.ok()?;
    redis::cmd(cmd).arg(arg).query_async(&mut c).await.ok()
}

/// The hash slot of `key` (CRC16/XMODEM of its hash tag, or of the key), as Redis computes it.
pub fn slot_of(key: &str) -> u16 {
    let k = key.as_bytes();
    let hashed = match k.iter().position(|&b| b == b'{') {
        Some(a) => match k[a + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &k[a + 1..a + 1 + len],
            _ => k,
        },
        None => k,
    };
    let mut crc: u16 = 0;
    for &b in hashed {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[cfg(test)]
mod tests {
    use super::slot_of;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot_of("foo"), 12182);
        assert_eq!(slot_of("{foo}bar"), 12182);
        assert_eq!(slot_of("bar"), 5061);
    }
}
