//! `tasks.http_destinations`: where `http_request` and `fan_out` may send requests.
//!
//! Anyone who can submit a task makes the workers send an HTTP request of their choosing
//! from inside the deployment's network: to Redis, to a cloud metadata service
//! (169.254.169.254), to an admin port on loopback. The policy is checked at submit time for
//! what the URL says (a literal address, a host name) and again by the worker on every
//! address a name resolves to and every redirect, so a name that resolves to a private
//! address, or a redirect to one, is refused as well.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

/// The section as written: lists of strings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSettings {
    /// Refuse loopback, link-local, private, unique-local, carrier-grade NAT, multicast and
    /// unspecified addresses (on in production).
    #[serde(default)]
    pub deny_private: bool,
    /// Only destinations matching `allow` may be reached.
    #[serde(default)]
    pub only_allowed: bool,
    /// Host names (`api.example.com`, `*.example.com`) and addresses or CIDR ranges
    /// (`10.1.2.3`, `10.1.0.0/16`) reachable even when `deny_private` would refuse them.
    #[serde(default)]
    pub allow: Vec<String>,
    /// The same kinds of entries, always refused; wins over `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// The parsed policy. The default lets everything through (as before it existed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DestinationSettings")]
pub struct DestinationPolicy {
    deny_private: bool,
    only_allowed: bool,
    allow: Rules,
    deny: Rules,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rules {
    nets: Vec<IpNet>,
    /// Lower-case names; a leading `.` matches any subdomain (from `*.example.com`).
    hosts: Vec<String>,
}

impl Rules {
    fn parse(entries: &[String], key: &str) -> Result<Self, String> {
        let mut rules = Rules::default();
        for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if let Ok(net) = e.parse::<IpNet>() {
                rules.nets.push(net);
            } else if let Ok(ip) = e.parse::<IpAddr>() {
                rules.nets.push(IpNet::from(ip));
            } else if let Some(suffix) = e.strip_prefix("*.") {
                rules.hosts.push(format!(".{}", valid_host(suffix, key)?));
            } else {
                rules.hosts.push(valid_host(e, key)?);
            }
        }
        Ok(rules)
    }

    fn has_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|h| match h.strip_prefix('.') {
            Some(suffix) => host.ends_with(h.as_str()) && host.len() > suffix.len(),
            None => *h == host,
        })
    }

    fn has_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }
}

fn valid_host(h: &str, key: &str) -> Result<String, String> {
    let ok = !h.is_empty()
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(h.to_ascii_lowercase())
    } else {
        Err(format!(
            "tasks.http_destinations.{key}: `{h}` is neither an address, a CIDR range nor a host name"
        ))
    }
}

impl TryFrom<DestinationSettings> for DestinationPolicy {
    type Error = String;

    fn try_from(s: DestinationSettings) -> Result<Self, String> {
        Ok(Self {
            deny_private: s.deny_private,
            only_allowed: s.only_allowed,
            allow: Rules::parse(&s.allow, "allow")?,
            deny: Rules::parse(&s.deny, "deny")?,
        })
    }
}

/// What a host name alone decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostVerdict {
    /// Listed in `deny`.
    Denied(String),
    /// Listed in `allow`: every address it resolves to may be used.
    Allowed,
    /// Decided per resolved address ([`DestinationPolicy::check_ip`]).
    CheckAddresses,
}

/// Why [`DestinationPolicy::resolve`] gave no address.
#[derive(Debug)]
pub enum Unresolved {
    /// The policy refused the host or every address it resolved to (the reason).
    Refused(String),
    /// The name did not resolve.
    Lookup(std::io::Error),
}

impl DestinationPolicy {
    /// Resolves `host` like the system does and keeps only the addresses the policy allows.
    /// Both outbound clients (the http kinds', the webhook dispatcher's) resolve through
    /// this, so the check sits where the address is chosen: a name that resolves (or is
    /// re-pointed) to a refused address is never connected to.
    pub async fn resolve(&self, host: &str) -> Result<Vec<std::net::SocketAddr>, Unresolved> {
        let verdict = self.check_host(host);
        if let HostVerdict::Denied(why) = verdict {
            return Err(Unresolved::Refused(why));
        }
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(Unresolved::Lookup)?
            .collect();
        if verdict == HostVerdict::Allowed {
            return Ok(addrs);
        }
        let mut refused = None;
        let usable: Vec<std::net::SocketAddr> = addrs
            .into_iter()
            .filter(|a| match self.check_ip(a.ip()) {
                Ok(()) => true,
                Err(why) => {
                    refused.get_or_insert(why);
                    false
                }
            })
            .collect();
        if usable.is_empty() {
            let why = refused.unwrap_or_else(|| "it resolved to no address".into());
            return Err(Unresolved::Refused(format!("host `{host}`: {why}")));
        }
        Ok(usable)
    }

    /// Whether the policy can refuse anything (an open policy costs nothing at run time).
    pub fn is_open(&self) -> bool {
        *self == Self::default()
    }

    /// Judges a host as a URL names it, before resolution (submit time).
    pub fn check_host(&self, host: &str) -> HostVerdict {
        if self.deny.has_host(host) {
            HostVerdict::Denied(format!(
                "host `{host}` is refused by tasks.http_destinations.deny"
            ))
        } else if self.allow.has_host(host) {
            HostVerdict::Allowed
        } else {
            HostVerdict::CheckAddresses
        }
    }

    /// Whether a request may go to `ip`; the error says which setting refused it.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        if self.deny.has_ip(ip) {
            return Err(format!(
                "address {ip} is refused by tasks.http_destinations.deny"
            ));
        }
        if self.allow.has_ip(ip) {
            return Ok(());
        }
        if self.deny_private
            && let Some(what) = special(ip)
        {
            return Err(format!(
                "address {ip} is {what}, refused by tasks.http_destinations.deny_private \
                 (list it in tasks.http_destinations.allow to reach it)"
            ));
        }
        if self.only_allowed {
            return Err(format!(
                "address {ip} is not in tasks.http_destinations.allow (only_allowed is on)"
            ));
        }
        Ok(())
    }

    /// The whole decision for a host as it appears in a URL: a literal address (brackets
    /// and all for IPv6) or a name together with the addresses it resolved to.
    pub fn check_name(&self, host: &str) -> HostVerdict {
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => match self.check_ip(ip) {
                Ok(()) => HostVerdict::Allowed,
                Err(e) => HostVerdict::Denied(e),
            },
            Err(_) => {
                let v = self.check_host(host);
                // A name that must be on the allow list and is not can be refused without
                // resolving it.
                if v == HostVerdict::CheckAddresses
                    && self.only_allowed
                    && self.allow.nets.is_empty()
                {
                    return HostVerdict::Denied(format!(
                        "host `{host}` is not in tasks.http_destinations.allow (only_allowed is on)"
                    ));
                }
                v
            }
        }
    }
}

/// IPv4-mapped and -compatible IPv6 addresses are the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// What kind of non-public address `ip` is, if it is one.
fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local address (cloud metadata lives here)")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("an unspecified (\"this network\") address")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("a carrier-grade NAT address")
            } else if v4.is_multicast() || v4.is_broadcast() || o[0] >= 240 {
                Some("a multicast, broadcast or reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some("a unique-local (private) address")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(deny_private: bool, allow: &[&str], deny: &[&str]) -> DestinationPolicy {
        DestinationSettings {
            deny_private,
            only_allowed: false,
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
        .try_into()
        .unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn deny_private_refuses_internal_ranges_and_lets_public_ones_through() {
        let p = policy(true, &[], &[]);
        for bad in [
            "127.0.0.1",
            "10.2.3.4",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            let e = p.check_ip(ip(bad)).unwrap_err();
            assert!(e.contains("deny_private"), "{bad}: {e}");
        }
        for good in ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert!(p.check_ip(ip(good)).is_ok(), "{good}");
        }
        assert!(policy(false, &[], &[]).check_ip(ip("127.0.0.1")).is_ok());
        assert!(policy(false, &[], &[]).is_open());
        assert!(!p.is_open());
    }

    #[test]
    fn allow_makes_exceptions_and_deny_wins_over_allow() {
        let p = policy(
            true,
            &["10.1.0.0/16", "hooks.internal", "*.svc.local"],
            &["10.1.2.3", "bad.svc.local"],
        );
        assert!(p.check_ip(ip("10.1.9.9")).is_ok());
        assert!(p.check_ip(ip("10.2.0.1")).is_err());
        assert!(p.check_ip(ip("10.1.2.3")).unwrap_err().contains(".deny"));
        assert_eq!(p.check_host("HOOKS.internal."), HostVerdict::Allowed);
        assert_eq!(p.check_host("a.svc.local"), HostVerdict::Allowed);
        assert_eq!(p.check_host("svc.local"), HostVerdict::CheckAddresses);
        assert!(matches!(
            p.check_host("bad.svc.local"),
            HostVerdict::Denied(_)
        ));
        assert!(matches!(p.check_name("[::1]"), HostVerdict::Denied(_)));
        assert_eq!(p.check_name("10.1.0.7"), HostVerdict::Allowed);
        assert_eq!(p.check_name("example.com"), HostVerdict::CheckAddresses);
    }

    #[test]
    fn only_allowed_refuses_everything_not_listed() {
        let p: DestinationPolicy = DestinationSettings {
            only_allowed: true,
            allow: vec!["api.example.com".into()],
            ..Default::default()
        }
        .try_into()
        .unwrap();
        assert_eq!(p.check_name("api.example.com"), HostVerdict::Allowed);
        assert!(matches!(
            p.check_name("example.org"),
            HostVerdict::Denied(_)
        ));
        assert!(p.check_ip(ip("8.8.8.8")).is_err());
    }

    #[test]
    fn bad_entries_are_rejected_naming_the_key() {
        let e = DestinationPolicy::try_from(DestinationSettings {
            deny: vec!["10.0.0.0/33".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("tasks.http_destinations.deny"), "{e}");
        assert!(
            DestinationPolicy::try_from(DestinationSettings {
                allow: vec!["http://x".into()],
                ..Default::default()
            })
            .is_err()
        );
    }
}
