//! What kinds share within one process: the limits the catalog was built with, one HTTP
//! client (one connection pool for every `http_request` and `fan_out`), and the mail
//! transport (one SMTP connection pool). Clients are built on first use, inside the runtime
//! that uses them, so the API process, which never runs kinds, never builds them.

use std::sync::OnceLock;

use errand_core::settings::EmailSettings;

use crate::{Failure, Limits, kinds::send_email::Mailer};

pub(crate) struct Services {
    pub(crate) limits: Limits,
    email: Option<EmailSettings>,
    http: OnceLock<Result<reqwest::Client, String>>,
    mailer: OnceLock<Result<Mailer, String>>,
}

impl Default for Services {
    fn default() -> Self {
        Self::new(Limits::default(), None)
    }
}

impl Services {
    pub(crate) fn new(limits: Limits, email: Option<EmailSettings>) -> Self {
        Self {
            limits,
            email,
            http: OnceLock::new(),
            mailer: OnceLock::new(),
        }
    }

    pub(crate) fn http(&self) -> Result<&reqwest::Client, Failure> {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .user_agent(concat!("errand/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(|e| Failure::permanent("http_client", e.clone()))
    }

    /// A configuration error is permanent: no retry fixes it, a restart with a fixed
    /// `email:` section does.
    pub(crate) fn mailer(&self) -> Result<&Mailer, Failure> {
        let Some(email) = &self.email else {
            return Err(Failure::permanent(
                "email_not_configured",
                "this process was started without email settings",
            ));
        };
        self.mailer
            .get_or_init(|| Mailer::from_settings(email))
            .as_ref()
            .map_err(|e| Failure::permanent("email_config", e.clone()))
    }
}
