//! Who is calling: the configured API keys, kept only as SHA-256 digests, and the caller a
//! presented key identifies.
//!
//! A presented key is hashed and compared with every configured digest (no early exit), so
//! neither the comparison's time nor which key matched first says anything about a key's
//! characters or length. Neither a key nor its digest is ever logged: a caller is named by
//! a short key id (the digest's first 8 hex digits), which is what the rate limiter counts by.

use errand_core::settings::{ApiKey, Scope};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The configured keys, as digests.
pub(crate) struct Keys {
    keys: Vec<([u8; 32], Scope)>,
}

/// Who is calling, as the guard established it; in the request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// `key:<8 hex>` for a key, `addr:<ip>` with no keys configured.
    pub id: String,
    pub scope: Scope,
}

impl Keys {
    pub(crate) fn new(keys: &[ApiKey]) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|k| (Sha256::digest(k.secret().as_bytes()).into(), k.scope))
                .collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller `presented` identifies, if any key matches. Every key is compared.
    pub(super) fn identify(&self, presented: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<Scope> = None;
        for (k, scope) in &self.keys {
            if bool::from(k.ct_eq(&digest)) {
                found = found.max(Some(*scope));
            }
        }
        found.map(|scope| Caller {
            id: format!(
                "key:{}",
                digest[..4]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
            scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_matching_key_is_found_and_the_widest_scope_wins() {
        let keys = Keys::new(&[
            ApiKey::new(Scope::Read, "reader-key-000000"),
            ApiKey::new(Scope::Submit, "submit-key-000000"),
            ApiKey::new(Scope::Admin, "submit-key-000000"),
        ]);
        assert_eq!(
            keys.identify("reader-key-000000").unwrap().scope,
            Scope::Read
        );
        assert_eq!(
            keys.identify("submit-key-000000").unwrap().scope,
            Scope::Admin
        );
        assert!(keys.identify("reader-key-00000").is_none());
        assert!(keys.identify("").is_none());
        let id = keys.identify("reader-key-000000").unwrap().id;
        assert!(
            id.starts_with("key:") && id.len() == 12 && !id.contains("reader"),
            "{id}"
        );
    }
}
