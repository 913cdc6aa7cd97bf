//! Reading what a binary says in its log lines (the port it bound, the address it serves
//! metrics on), in the pretty and the JSON log format alike.

use std::net::SocketAddr;

use crate::output::without_ansi;

/// The port of an `errand-api listening` log line, pretty (`port=8080`, maybe with ANSI
/// colours) or JSON (`"port":8080`).
pub fn listening_port(line: &str) -> Option<u16> {
    log_field(line, "errand-api listening", "port")?
        .parse()
        .ok()
}

/// The address of a worker's `serving metrics at /metrics` log line, pretty
/// (`addr=127.0.0.1:9091`, maybe with ANSI colours) or JSON (`"addr":"127.0.0.1:9091"`).
pub fn metrics_addr(line: &str) -> Option<SocketAddr> {
    log_field(line, "serving metrics at /metrics", "addr")?
        .parse()
        .ok()
}

/// Field `field` of a log line saying `message`, in either log format.
fn log_field(line: &str, message: &str, field: &str) -> Option<String> {
    if !line.contains(message) {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        return match &v[field] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
    }
    let plain = without_ansi(line);
    let key = format!("{field}=");
    let at = plain
        .match_indices(&key)
        .find(|(i, _)| *i == 0 || plain[..*i].ends_with(char::is_whitespace))?
        .0
        + key.len();
    Some(
        plain[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::{listening_port, metrics_addr};

    #[test]
    fn the_port_is_read_from_pretty_and_json_listening_lines() {
        let pretty = "\u{1b}[2m2026-12-02T03:14:56.572370Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m errand-api listening; Swagger UI at /docs \u{1b}[3mport\u{1b}[0m\u{1b}[2m=\u{1b}[0m40535";
        assert_eq!(listening_port(pretty), Some(40535));
        let json = r#"{"timestamp":"2026-12-02T03:14:59.902748Z","level":"INFO","message":"errand-api listening; Swagger UI at /docs","port":34195,"target":"errand_api"}"#;
        assert_eq!(listening_port(json), Some(34195));
        assert_eq!(listening_port("starting 2 workers port=1"), None);
    }

    #[test]
    fn the_metrics_addr_is_read_from_pretty_and_json_lines() {
        let pretty = "\u{1b}[2m2026-12-02T03:14:56.572370Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m serving metrics at /metrics \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:40535";
        assert_eq!(
            metrics_addr(pretty),
            Some("127.0.0.1:40535".parse().unwrap())
        );
        let json = r#"{"timestamp":"2026-12-02T03:14:59.902748Z","level":"INFO","message":"serving metrics at /metrics","addr":"127.0.0.1:34195","target":"errand_worker::metrics"}"#;
        assert_eq!(metrics_addr(json), Some("127.0.0.1:34195".parse().unwrap()));
        assert_eq!(metrics_addr("listening addr=127.0.0.1:1"), None);
    }
}
