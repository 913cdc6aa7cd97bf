//! Who is looking at the dashboard. Browsers cannot send `Authorization: Bearer` on a link
//! or an EventSource, so with API keys configured the dashboard asks for a key once (a
//! login form, posted, so the key is never in a URL or a log line) and answers with a
//! signed session cookie: HttpOnly (scripts cannot read it), SameSite=Strict (other sites'
//! requests do not carry it), scoped to `/ui`.
//!
//! The cookie is `<key id>.<scope>.<expiry>.<nonce>.<mac>`, the MAC an HMAC-SHA256 under a
//! secret derived from every configured key. So every api replica accepts the sessions of
//! every other, nothing is stored in Redis, and changing the keys ends every session;
//! a session also ends when the key it was opened with is removed. Without keys the API is
//! open, and so is the dashboard: a session is handed out on the first visit, still
//! needed for the CSRF token.
//!
//! CSRF: every form that changes something carries `csrf`, an HMAC of the session's random
//! nonce. Another site can make a browser post a form, but cannot read the cookie (nor,
//! with SameSite=Strict, make the browser send it), so it cannot know the token.

use actix_web::{HttpRequest, http::header};
use errand_core::settings::{ApiKey, Scope};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub(super) const COOKIE: &str = "errand_session";
/// How long a login lasts.
const SESSION_SECS: i64 = 12 * 3600;

pub(crate) struct Auth {
    /// Key digests with their scopes; empty = open.
    keys: Vec<([u8; 32], Scope)>,
    secret: [u8; 32],
}

/// A valid session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The first 8 hex digits of the key's digest (`-` when open): names the key in logs
    /// without saying anything about it.
    pub key_id: String,
    pub scope: Scope,
    expires: i64,
    nonce: String,
}

impl Session {
    /// A session for a dashboard without keys: it needs no login, only the CSRF nonce.
    pub(crate) fn open(now: i64) -> Self {
        Self {
            key_id: "-".into(),
            scope: Scope::Admin,
            expires: now + SESSION_SECS,
            nonce: hex(&rand::random::<[u8; 16]>()),
        }
    }
}

impl Auth {
    pub(crate) fn new(keys: &[ApiKey], key_prefix: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"errand-ui-session\0");
        h.update(key_prefix.as_bytes());
        for k in keys {
            h.update(b"\0");
            h.update(k.secret().as_bytes());
        }
        Self {
            keys: keys
                .iter()
                .map(|k| (Sha256::digest(k.secret().as_bytes()).into(), k.scope))
                .collect(),
            secret: h.finalize().into(),
        }
    }

    /// True when API keys are configured, so the dashboard needs a login.
    pub(crate) fn keyed(&self) -> bool {
        !self.keys.is_empty()
    }

    fn mac(&self, what: &str) -> String {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret).expect("any key size");
        m.update(what.as_bytes());
        hex(&m.finalize().into_bytes())
    }

    /// The session `presented` (an API key) opens, if it is one; every key is compared.
    pub(crate) fn login(&self, presented: &str, now: i64) -> Option<Session> {
        let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        let mut found: Option<Scope> = None;
        for (k, scope) in &self.keys {
            if bool::from(k.ct_eq(&digest)) {
                found = found.max(Some(*scope));
            }
        }
        // A worker key is for the worker protocol only: it opens no dashboard.
        found.filter(|s| *s != Scope::Worker).map(|scope| Session {
            key_id: hex(&digest[..4]),
            scope,
            expires: now + SESSION_SECS,
            nonce: hex(&rand::random::<[u8; 16]>()),
        })
    }

    /// The `Set-Cookie` value carrying `s`; `secure` when the request came over HTTPS.
    pub(crate) fn cookie(&self, s: &Session, secure: bool) -> String {
        let body = format!(
            "{}.{}.{}.{}",
            s.key_id,
            s.scope.as_str(),
            s.expires,
            s.nonce
        );
        let mac = self.mac(&body);
        format!(
            "{COOKIE}={body}.{mac}; Path=/ui; Max-Age={SESSION_SECS}; HttpOnly; SameSite=Strict{}",
            if secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that ends the session.
    pub(crate) fn clear_cookie(secure: bool) -> String {
        format!(
            "{COOKIE}=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict{}",
            if secure { "; Secure" } else { "" }
        )
    }

    /// The request's session, if its cookie is valid, unexpired, and (with keys) still
    /// names a configured key of that scope.
    pub(crate) fn session(&self, req: &HttpRequest, now: i64) -> Option<Session> {
        let value = cookie_value(req, COOKIE)?;
        let (body, mac) = value.rsplit_once('.')?;
        if !bool::from(self.mac(body).as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        let mut f = body.split('.');
        let (key_id, scope, expires, nonce) = (f.next()?, f.next()?, f.next()?, f.next()?);
        let scope = match scope {
            "read" => Scope::Read,
            "submit" => Scope::Submit,
            "admin" => Scope::Admin,
            _ => return None,
        };
        let expires: i64 = expires.parse().ok()?;
        if expires <= now {
            return None;
        }
        let known = if self.keyed() {
            self.keys
                .iter()
                .any(|(d, s)| hex(&d[..4]) == key_id && *s == scope)
        } else {
            key_id == "-"
        };
        known.then(|| Session {
            key_id: key_id.to_owned(),
            scope,
            expires,
            nonce: nonce.to_owned(),
        })
    }

    /// The CSRF token of session `s`, for its forms.
    pub(crate) fn csrf(&self, s: &Session) -> String {
        self.mac(&format!("csrf.{}", s.nonce))
    }

    /// Whether `token` is `s`'s CSRF token.
    pub(crate) fn csrf_ok(&self, s: &Session, token: &str) -> bool {
        bool::from(self.csrf(s).as_bytes().ct_eq(token.as_bytes()))
    }
}

fn cookie_value<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn with_cookie(set_cookie: &str) -> HttpRequest {
        let pair = set_cookie.split(';').next().unwrap();
        TestRequest::default()
            .insert_header((header::COOKIE, format!("other=1; {pair}")))
            .to_http_request()
    }

    #[test]
    fn a_session_round_trips_and_any_change_to_it_is_refused() {
        let keys = [
            ApiKey::new(Scope::Read, "reader-key-000000"),
            ApiKey::new(Scope::Admin, "admin-key-0000000"),
        ];
        let auth = Auth::new(&keys, "errand");
        assert!(auth.login("nope", 0).is_none());
        let s = auth.login("reader-key-000000", 100).unwrap();
        assert_eq!(s.scope, Scope::Read);
        let set = auth.cookie(&s, false);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(!set.contains("reader-key"), "the key is not in the cookie");
        let back = auth.session(&with_cookie(&set), 200).unwrap();
        assert_eq!(back.scope, Scope::Read);
        assert!(auth.csrf_ok(&back, &auth.csrf(&s)));
        assert!(!auth.csrf_ok(&back, "0000"));
        assert!(
            auth.session(&with_cookie(&set), 100 + SESSION_SECS)
                .is_none(),
            "expired"
        );
        let forged = set.replacen(".read.", ".admin.", 1);
        assert!(
            auth.session(&with_cookie(&forged), 200).is_none(),
            "scope raised"
        );
        // Other keys, or the same key under another prefix: another secret.
        let other = Auth::new(&keys[..1], "errand");
        assert!(other.session(&with_cookie(&set), 200).is_none());
    }

    #[test]
    fn an_open_dashboard_hands_out_sessions_that_a_keyed_one_refuses() {
        let open = Auth::new(&[], "errand");
        assert!(!open.keyed());
        let s = Session::open(0);
        let set = open.cookie(&s, true);
        assert!(set.ends_with("; Secure"));
        assert_eq!(
            open.session(&with_cookie(&set), 1).unwrap().scope,
            Scope::Admin
        );
    }
}
