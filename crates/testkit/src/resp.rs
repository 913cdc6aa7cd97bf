//! Just enough of the Redis protocol (RESP) to tell that a redis-server the harness started
//! is up, is the one it started, and has loaded its data; without a Redis client crate, so
//! a crate whose tests need only a server (the client, the CLI) links none.

use std::time::Duration;

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// What a probe found on the port.
pub(crate) enum Probe {
    /// Our server answers PING.
    Ready,
    /// A server answers `LOADING`: ours, freshly started.
    Loading,
    /// Another process's server (or one that answered otherwise).
    NotOurs,
}

/// Asks the server on `port` for its pid and a PING; `None` when nothing answered.
pub(crate) async fn probe(port: u16, password: Option<&str>, pid: u32) -> Option<Probe> {
    tokio::time::timeout(Duration::from_secs(1), async {
        let s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let mut c = BufReader::new(s);
        if let Some(p) = password {
            command(&mut c, &["AUTH", p]).await?.ok()?;
        }
        match command(&mut c, &["INFO", "server"]).await? {
            Ok(info) if info.contains(&format!("process_id:{pid}\r\n")) => {}
            Ok(_) => return Some(Probe::NotOurs),
            Err(e) if e.starts_with("LOADING") => return Some(Probe::Loading),
            Err(_) => return Some(Probe::NotOurs),
        }
        Some(match command(&mut c, &["PING"]).await? {
            Ok(_) => Probe::Ready,
            Err(e) if e.starts_with("LOADING") => Probe::Loading,
            Err(_) => Probe::NotOurs,
        })
    })
    .await
    .ok()
    .flatten()
}

/// One command: its simple or bulk string reply, or the error line; `None` when the
/// connection failed or the reply is of another type.
async fn command(c: &mut BufReader<TcpStream>, args: &[&str]) -> Option<Result<String, String>> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    c.get_mut().write_all(req.as_bytes()).await.ok()?;
    let mut line = String::new();
    c.read_line(&mut line).await.ok()?;
    let body = line.get(1..)?.trim_end().to_owned();
    match line.as_bytes().first()? {
        b'+' => Some(Ok(body)),
        b'-' => Some(Err(body)),
        b'$' => {
            let n: usize = body.parse().ok()?;
            let mut buf = vec![0; n + 2];
            c.read_exact(&mut buf).await.ok()?;
            buf.truncate(n);
            Some(Ok(String::from_utf8_lossy(&buf).into_owned()))
        }
        _ => None,
    }
}
