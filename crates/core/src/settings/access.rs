//! Who may call the API: `api.api_keys` (with scopes), `api.allow_anonymous`, and the
//! per-key submit rate limit. Keys never appear in `Debug` output, so a settings dump in a
//! log cannot leak one.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// What a key may do. `read` < `submit` < `admin`, each including the ones before it;
/// `worker` stands apart: the HTTP worker protocol (`/v1/worker/*`) and nothing else, which
/// `admin` includes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read tasks, queues, workers, kinds and schedules.
    Read,
    /// Also submit, cancel and retry tasks.
    Submit,
    /// Only the HTTP worker protocol: register kinds, lease tasks, heartbeat, report.
    Worker,
    /// Everything: also create, change and delete schedules (and pause queues).
    Admin,
}

impl Scope {
    /// The prefix an `api.api_keys` entry uses for this scope.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Submit => "submit",
            Scope::Worker => "worker",
            Scope::Admin => "admin",
        }
    }

    /// Whether a key of this scope may make a request that needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        match (self, needed) {
            (Scope::Admin, _) => true,
            (Scope::Worker, n) => n == Scope::Worker,
            (_, Scope::Worker) => false,
            (s, n) => s >= n,
        }
    }
}

/// One entry of `api.api_keys`: `KEY` (scope admin) or `read:KEY`, `submit:KEY`, `admin:KEY`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// What the key may do.
    pub scope: Scope,
    secret: String,
}

impl ApiKey {
    /// A key with this scope (tests and the settings parser).
    pub fn new(scope: Scope, secret: impl Into<String>) -> Self {
        Self {
            scope,
            secret: secret.into(),
        }
    }

    /// The key itself: for comparing (in constant time) and nothing else.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        let (scope, secret) = match entry.split_once(':') {
            Some(("read", k)) => (Scope::Read, k),
            Some(("submit", k)) => (Scope::Submit, k),
            Some(("admin", k)) => (Scope::Admin, k),
            Some(("worker", k)) => (Scope::Worker, k),
            _ => (Scope::Admin, entry),
        };
        (!secret.is_empty()).then(|| Self::new(scope, secret))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ApiKey({}, <{} chars>)",
            self.scope.as_str(),
            self.secret.len()
        )
    }
}

/// Keys as a list of strings (YAML list, or comma-separated in `ERRAND__API__API_KEYS`);
/// empty entries are dropped, so `ERRAND__API__API_KEYS=` means "no keys", never a key
/// that an empty bearer token matches.
pub(crate) fn api_keys<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ApiKey>, D::Error> {
    let raw: Vec<String> = Vec::deserialize(d)?;
    Ok(raw.iter().filter_map(|e| ApiKey::parse(e)).collect())
}

/// Shortest key accepted in production: a key is a password that is typed by nobody, so it
/// can be long (`openssl rand -hex 32` gives 64 characters).
pub const MIN_PRODUCTION_KEY_CHARS: usize = 16;

/// `api.rate_limit`: tasks per second each caller may submit, per API process.
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// 0 turns the limit off (the local default).
    pub submits_per_sec: f64,
    /// Tasks a caller may submit at once after being idle.
    pub burst: u32,
}

impl RateLimitSettings {
    /// Whether submits are limited at all (`submits_per_sec: 0` is off).
    pub fn enabled(&self) -> bool {
        self.submits_per_sec > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_take_an_optional_scope_and_debug_hides_the_key() {
        assert_eq!(ApiKey::parse("abc"), Some(ApiKey::new(Scope::Admin, "abc")));
        assert_eq!(
            ApiKey::parse(" read:abc "),
            Some(ApiKey::new(Scope::Read, "abc"))
        );
        assert_eq!(
            ApiKey::parse("submit:abc"),
            Some(ApiKey::new(Scope::Submit, "abc"))
        );
        assert_eq!(
            ApiKey::parse("other:abc"),
            Some(ApiKey::new(Scope::Admin, "other:abc"))
        );
        assert_eq!(ApiKey::parse(""), None);
        assert_eq!(ApiKey::parse("read:"), None);
        let k = ApiKey::new(Scope::Submit, "topsecretvalue");
        assert!(!format!("{k:?}").contains("topsecret"));
        assert!(Scope::Admin > Scope::Submit && Scope::Submit > Scope::Read);
        assert_eq!(
            ApiKey::parse("worker:abc"),
            Some(ApiKey::new(Scope::Worker, "abc"))
        );
        assert!(Scope::Worker.allows(Scope::Worker) && Scope::Admin.allows(Scope::Worker));
        assert!(!Scope::Worker.allows(Scope::Read) && !Scope::Submit.allows(Scope::Worker));
        assert!(Scope::Submit.allows(Scope::Read) && !Scope::Read.allows(Scope::Submit));
    }
}
