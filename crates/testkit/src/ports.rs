//! Free loopback ports, for what cannot bind port 0 and say which port it got.

use std::net::TcpListener;

/// A port nobody is listening on right now: for an address that must refuse connections,
/// or for a server that cannot bind port 0 and report it (then start it with a retry, as
/// [`RedisServer`](crate::RedisServer) does). Anything else binds port 0.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
