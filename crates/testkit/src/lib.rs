//! Test-only harness: a real `redis-server` on a free port in a temp dir, the real errand
//! binaries as child processes, and waiting on conditions with deadlines (never fixed
//! sleeps). Everything a test uses is re-exported here.
//!
//! # Layout
//! - `redis_server`: [`RedisServer`], a private `redis-server` (AOF, password, TLS with
//!   `tls`'s [`Tls`]) and the faults tests inject into it; [`cluster`]: a Redis Cluster.
//! - `process`: [`Proc`], a running errand binary, and [`bin_path`]; `output`: [`Output`],
//!   what it printed; `log_lines`: [`listening_port`], [`metrics_addr`].
//! - `deployment`: [`Errand`], the settings an api and its workers share, and starting them.
//! - [`api`]: typed HTTP calls; [`smtp`]: a mail sink; `wait`: [`wait_for`]; `ports`:
//!   [`free_port`].

pub mod api;
#[cfg(feature = "client")]
pub mod cluster;
mod deployment;
mod log_lines;
mod output;
mod ports;
mod process;
mod redis_server;
mod resp;
pub mod smtp;
mod tls;
mod wait;

pub use deployment::Errand;
pub use log_lines::{listening_port, metrics_addr};
pub use output::Output;
pub use ports::free_port;
pub use process::{Proc, bin_path};
pub use redis_server::RedisServer;
#[cfg(feature = "client")]
pub(crate) use redis_server::wait_own_redis;
pub use tls::Tls;
pub use wait::wait_for;
