//! A minimal SMTP server for tests: accepts mail on a free loopback port and keeps every
//! message it receives, so a test can check what a real SMTP client sent. It speaks what a
//! client needs to hand over mail: EHLO/HELO, MAIL FROM, RCPT TO, DATA (with dot-unstuffing),
//! RSET, NOOP, QUIT. No TLS, no AUTH. `refuse` makes it answer RCPT TO for an address with
//! a given reply, to exercise permanent (5xx) and transient (4xx) refusals.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The MAIL FROM address (without angle brackets).
    pub mail_from: String,
    /// The accepted RCPT TO addresses.
    pub rcpt_to: Vec<String>,
    /// The DATA section: headers, blank line, body (CRLF line ends, dots unstuffed).
    pub data: String,
}

impl Received {
    /// The first header called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = found.as_mut() {
                    v.push_str(line);
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                found = Some(v.trim().to_owned());
            }
        }
        found
    }

    /// Everything after the headers.
    pub fn body(&self) -> &str {
        self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    /// Lower-cased address → reply line (e.g. `550 5.1.1 no such user`).
    refuse: HashMap<String, String>,
}

/// The running server; stops when dropped.
pub struct SmtpSink {
    port: u16,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// Listens on a port of its own (bound to 0, so no race with other tests).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, shared.clone()));
            }
        });
        Self {
            port,
            state,
            accept,
        }
    }

    /// The port to point `email.smtp.port` at.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Messages received so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Answers RCPT TO for `address` with `reply` (a full SMTP reply line, e.g.
    /// `550 5.1.1 no such user` or `451 4.3.0 try later`).
    pub fn refuse(&self, address: &str, reply: &str) {
        self.state
            .lock()
            .unwrap()
            .refuse
            .insert(address.to_lowercase(), reply.to_owned());
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The address inside `<…>` of a MAIL FROM / RCPT TO argument.
fn address(arg: &str) -> String {
    let a = arg.trim();
    match (a.find('<'), a.find('>')) {
        (Some(s), Some(e)) if s < e => a[s + 1..e].to_owned(),
        _ => a.split_whitespace().next().unwrap_or_default().to_owned(),
    }
}

/// Writes one reply; false once the client is gone.
async fn reply(w: &mut tokio::net::tcp::OwnedWriteHalf, line: &str) -> bool {
    w.write_all(format!("{line}\r\n").as_bytes()).await.is_ok()
}

async fn session(stream: TcpStream, state: Arc<Mutex<State>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if !reply(&mut write, "220 errand-testkit ESMTP").await {
        return;
    }
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match lines.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
        let verb = line
            .split_once(' ')
            .map_or(line.as_str(), |(v, _)| v)
            .to_ascii_uppercase();
        let upper = line.to_ascii_uppercase();
        let answer = match verb.as_str() {
            "EHLO" => "250-errand-testkit\r\n250 8BITMIME".to_owned(),
            "HELO" => "250 errand-testkit".to_owned(),
            "MAIL" if upper.starts_with("MAIL FROM:") => {
                from = Some(address(&line["MAIL FROM:".len()..]));
                to.clear();
                "250 2.1.0 OK".to_owned()
            }
            "RCPT" if upper.starts_with("RCPT TO:") => {
                let a = address(&line["RCPT TO:".len()..]);
                let refused = state.lock().unwrap().refuse.get(&a.to_lowercase()).cloned();
                match refused {
                    Some(r) => r,
                    None if from.is_none() => "503 5.5.1 MAIL first".to_owned(),
                    None => {
                        to.push(a);
                        "250 2.1.5 OK".to_owned()
                    }
                }
            }
            "DATA" if to.is_empty() => "503 5.5.1 no valid recipients".to_owned(),
            "DATA" => {
                if !reply(&mut write, "354 end data with <CR><LF>.<CR><LF>").await {
                    return;
                }
                let mut data = String::new();
                loop {
                    buf.clear();
                    match lines.read_until(b'\n', &mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let l = String::from_utf8_lossy(&buf);
                    if l == ".\r\n" || l == ".\n" {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                state.lock().unwrap().messages.push(Received {
                    mail_from: from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut to),
                    data,
                });
                "250 2.0.0 queued".to_owned()
            }
            "RSET" => {
                from = None;
                to.clear();
                "250 2.0.0 OK".to_owned()
            }
            "NOOP" => "250 2.0.0 OK".to_owned(),
            "QUIT" => {
                reply(&mut write, "221 2.0.0 bye").await;
                return;
            }
            _ => format!("502 5.5.2 `{}` not implemented", verb),
        };
        if !reply(&mut write, &answer).await {
            return;
        }
    }
}
