//! The `email:` section: how the `send_email` kind delivers mail. Only workers read it; the
//! API validates addresses without needing a transport.

use std::{fmt, path::PathBuf, time::Duration};

use serde::Deserialize;

/// The `email:` section.
#[derive(Debug, Clone, Deserialize)]
pub struct EmailSettings {
    /// SMTP relay, or `.eml` files for development.
    pub transport: EmailTransport,
    /// The `From:` mailbox of every message, e.g. `errand <errand@example.com>`.
    pub from: String,
    /// Where the file transport writes `.eml` files (created on first use).
    pub file_dir: PathBuf,
    /// The relay, when `transport` is `smtp`.
    pub smtp: SmtpSettings,
}

/// Where messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransport {
    /// An SMTP relay (`email.smtp`).
    Smtp,
    /// One `.eml` file per message in `email.file_dir`: for development, nothing leaves the host.
    File,
}

/// The SMTP relay `send_email` delivers through.
#[derive(Clone, Deserialize)]
pub struct SmtpSettings {
    /// The relay's host name (also the name its TLS certificate must carry).
    pub host: String,
    /// 25, 587 (starttls) or 465 (tls), usually.
    pub port: u16,
    /// Plain, STARTTLS (required) or TLS from the start.
    pub tls: SmtpTls,
    /// Empty: no authentication.
    pub username: String,
    /// Set through `ERRAND__EMAIL__SMTP__PASSWORD`, never in a file.
    pub password: String,
    /// Bound on each SMTP command, connecting included.
    pub timeout_secs: u64,
}

impl SmtpSettings {
    /// `timeout_secs` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// Hand-written so the password never reaches a log line.
impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: only for a relay on the same host or a test server.
    None,
    /// Connect in plain text, then upgrade with STARTTLS; refuses to go on without it.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::settings::{Environment, Settings};

    use super::*;

    fn config_dir() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"))
    }

    #[test]
    fn local_writes_files_and_production_sends_over_smtp() {
        let local = Settings::load_from(Environment::Local, &config_dir()).unwrap();
        assert_eq!(local.email.transport, EmailTransport::File);
        assert_eq!(local.email.file_dir, PathBuf::from(".errand/mail"));
        let prod = Settings::load_from(Environment::Production, &config_dir()).unwrap();
        assert_eq!(prod.email.transport, EmailTransport::Smtp);
        assert_eq!(prod.email.smtp.tls, SmtpTls::None);
        assert_eq!(prod.email.smtp.timeout(), Duration::from_secs(30));
    }

    #[test]
    fn debug_output_hides_the_smtp_password() {
        let mut s = Settings::load_from(Environment::Local, &config_dir())
            .unwrap()
            .email
            .smtp;
        s.password = "hunter2".into();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
