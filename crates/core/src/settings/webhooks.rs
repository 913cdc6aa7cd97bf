//! `webhooks`: how workers deliver completion webhooks (docs/webhooks.md), and the
//! Standard Webhooks signature they carry.
//!
//! A callback URL is a request the submitter makes the workers send from inside the
//! deployment's network, so it meets the same destination policy as the `http_request` kind
//! (its own section, `webhooks.destinations`, refusing private ranges by default): at submit
//! for what the URL says, and at delivery for every address the name resolves to.

use std::time::Duration;

use base64::{
    Engine, alphabet,
    engine::{
        DecodePaddingMode,
        general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD},
    },
};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Deserializer};
use sha2::Sha256;

use super::{DestinationPolicy, HostVerdict};
use crate::task::Callback;

/// Longest callback URL accepted (longer ones are almost always a mistake, and every byte
/// is kept on the record).
pub const MAX_CALLBACK_URL_BYTES: usize = 2048;

/// The `webhooks:` section: signing, retries and destinations of completion callbacks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Signing secrets, `whsec_<base64>`; every one signs each delivery, so a receiver that
    /// knows any of them verifies it (rotation: add the new one, move receivers, drop the
    /// old). Empty: callbacks are refused at submit.
    #[serde(default, deserialize_with = "secrets")]
    pub secrets: Vec<WebhookSecret>,
    /// Bound on one delivery attempt, connecting and reading the answer included.
    pub timeout_ms: u64,
    /// Most bytes of a receiver's answer read (the rest is dropped unread).
    pub max_response_bytes: usize,
    /// Delay before the first retry; each further retry doubles it, up to `max_retry_ms`.
    pub initial_retry_ms: u64,
    /// The longest pause between two attempts.
    pub max_retry_ms: u64,
    /// A delivery is given up when its next attempt would fall later than this after the
    /// task ended.
    pub retry_window_secs: u64,
    /// Deliveries one worker process sends at once.
    pub concurrency: usize,
    /// Longest pause between looks for due deliveries.
    pub poll_ms: u64,
    /// Where callbacks may point (same entries as `tasks.http_destinations`).
    pub destinations: DestinationPolicy,
}

impl WebhookSettings {
    /// `timeout_ms` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// How long a claimed delivery stays claimed: one attempt's bound plus a margin for
    /// recording its outcome. A worker killed mid-attempt holds it no longer than this.
    pub fn lease(&self) -> Duration {
        self.timeout() + Duration::from_secs(5)
    }

    /// The delay after failed attempt `attempt` (1-based), or None once the retry window
    /// is spent (`elapsed`: since the task ended).
    pub fn retry_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        let factor = 1u64 << attempt.saturating_sub(1).min(30);
        let delay = Duration::from_millis(
            self.initial_retry_ms
                .saturating_mul(factor)
                .min(self.max_retry_ms),
        );
        (elapsed + delay <= Duration::from_secs(self.retry_window_secs)).then_some(delay)
    }

    /// The `webhook-signature` header for one attempt: a `v1,<base64>` per secret,
    /// space-separated.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.secrets
            .iter()
            .map(|s| s.sign(id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks a callback at submit; the error names the field (`callback.url`, ...).
    pub fn check_callback(&self, cb: &Callback) -> Result<(), (&'static str, String)> {
        if self.secrets.is_empty() {
            return Err((
                "callback",
                "this server sends no webhooks: webhooks.secrets is empty".into(),
            ));
        }
        self.check_url(&cb.url).map_err(|e| ("callback.url", e))?;
        if cb.events.is_empty() {
            return Err((
                "callback.events",
                "must name at least one of succeeded, failed, cancelled".into(),
            ));
        }
        Ok(())
    }

    /// What the URL alone decides: its shape and, for a literal address or a listed name,
    /// the destination policy. Names are checked again, per resolved address, at delivery.
    pub fn check_url(&self, raw: &str) -> Result<url::Url, String> {
        if raw.len() > MAX_CALLBACK_URL_BYTES {
            return Err(format!("longer than {MAX_CALLBACK_URL_BYTES} bytes"));
        }
        let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "scheme must be http or https, not `{}`",
                url.scheme()
            ));
        }
        let host = url.host_str().ok_or("has no host")?;
        if let HostVerdict::Denied(why) = self.destinations.check_name(host) {
            return Err(policy_message(&why));
        }
        Ok(url)
    }
}

/// The destination policy's messages name the section it was first written for; a refused
/// callback names its own.
pub fn policy_message(why: &str) -> String {
    why.replace("tasks.http_destinations", "webhooks.destinations")
}

/// Base64 with or without its padding: generators print both.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One signing secret. Its bytes never reach a log: `Debug` shows only their length.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecret({} bytes)", self.0.len())
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>` (padding optional). The Standard Webhooks spec asks for 24 to
    /// 64 bytes; shorter keys are guessable, so they are refused rather than warned about.
    pub fn parse(s: &str) -> Result<Self, String> {
        let b64 = s
            .trim()
            .strip_prefix("whsec_")
            .ok_or("must start with `whsec_` followed by base64")?;
        let bytes = LENIENT
            .decode(b64)
            .map_err(|_| "the part after `whsec_` is not base64")?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(format!(
                "decodes to {} bytes; it must be 24 to 64 (e.g. `whsec_$(openssl rand -base64 32)`)",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

fn secrets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WebhookSecret>, D::Error> {
    let raw: Vec<String> = Vec::deserialize(d)?;
    raw.iter()
        .filter(|s| !s.trim().is_empty())
        .enumerate()
        .map(|(i, s)| {
            WebhookSecret::parse(s)
                .map_err(|e| serde::de::Error::custom(format!("webhooks.secrets[{i}]: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::DestinationSettings;

    fn settings(secrets: &[&str], policy: DestinationSettings) -> WebhookSettings {
        WebhookSettings {
            secrets: secrets
                .iter()
                .map(|s| WebhookSecret::parse(s).unwrap())
                .collect(),
            timeout_ms: 10_000,
            max_response_bytes: 4096,
            initial_retry_ms: 5_000,
            max_retry_ms: 3_600_000,
            retry_window_secs: 86_400,
            concurrency: 16,
            poll_ms: 250,
            destinations: policy.try_into().unwrap(),
        }
    }

    /// The Standard Webhooks reference libraries' own test vector.
    #[test]
    fn signs_like_the_reference_implementations() {
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            s.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(format!("{s:?}"), "WebhookSecret(24 bytes)");
    }

    #[test]
    fn every_secret_signs_so_rotation_keeps_receivers_verifying() {
        let w = settings(
            &[
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ],
            DestinationSettings::default(),
        );
        let sig = w.signature("m", 1, b"{}");
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], w.secrets[0].sign("m", 1, b"{}"));
        assert_eq!(parts[1], w.secrets[1].sign("m", 1, b"{}"));
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_24_to_64_bytes() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_!!!").is_err());
        let short = WebhookSecret::parse("whsec_c2hvcnQ=").unwrap_err();
        assert!(short.contains("24 to 64"), "{short}");
        // Unpadded base64, as some generators print it.
        assert!(WebhookSecret::parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").is_ok());
    }

    #[test]
    fn retries_double_from_the_initial_delay_up_to_the_cap_within_the_window() {
        let w = settings(&[], DestinationSettings::default());
        let d = |a, e| {
            w.retry_delay(a, Duration::from_secs(e))
                .map(|d| d.as_secs())
        };
        assert_eq!(d(1, 0), Some(5));
        assert_eq!(d(2, 5), Some(10));
        assert_eq!(d(5, 100), Some(80));
        assert_eq!(d(20, 1000), Some(3600));
        assert_eq!(d(30, 86_000), None, "past the window: given up");
    }

    #[test]
    fn callback_urls_are_checked_naming_the_field() {
        let open = settings(
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            DestinationSettings {
                deny_private: true,
                ..Default::default()
            },
        );
        let cb = |url: &str| Callback {
            url: url.into(),
            events: vec![crate::task::WebhookEvent::Succeeded],
        };
        assert!(
            open.check_callback(&cb("https://hooks.example.com/x"))
                .is_ok()
        );
        let (field, why) = open.check_callback(&cb("http://127.0.0.1:9/")).unwrap_err();
        assert_eq!(field, "callback.url");
        assert!(why.contains("webhooks.destinations.deny_private"), "{why}");
        assert_eq!(
            open.check_callback(&cb("ftp://x/")).unwrap_err().0,
            "callback.url"
        );
        assert_eq!(
            open.check_callback(&cb("not a url")).unwrap_err().0,
            "callback.url"
        );
        let none = Callback {
            url: "https://hooks.example.com/".into(),
            events: vec![],
        };
        assert_eq!(open.check_callback(&none).unwrap_err().0, "callback.events");
        let unsigned = settings(&[], DestinationSettings::default());
        assert_eq!(
            unsigned
                .check_callback(&cb("https://hooks.example.com/"))
                .unwrap_err()
                .0,
            "callback"
        );
    }
}
