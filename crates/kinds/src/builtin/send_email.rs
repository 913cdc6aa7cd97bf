//! `send_email`: a text message (with an optional HTML alternative) to one or many
//! recipients, one message per recipient, so no recipient sees the others. Sent through the
//! `email:` settings' transport: an SMTP relay, or `.eml` files in a directory (the local
//! default, so development never sends real mail). Progress is reported per recipient.
//!
//! A recipient the server refuses for good (SMTP 5xx) is listed under `rejected` and the
//! others still get their message; the task fails (permanently) only when every recipient
//! was refused. A transient refusal (4xx), a lost connection or a timeout stops the attempt
//! as a retryable failure.
//!
//! **Not idempotent.** A retry after a partial send (or after a worker died mid-way) sends
//! again to the recipients that already got the message.

use std::path::PathBuf;

use errand_core::settings::{EmailSettings, EmailTransport, SmtpTls};
use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart, header::ContentType},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::{Failure, Invalid, Limits, TaskContext, TaskKind};

/// The `send_email` kind's [`TaskKind`] impl; the catalog registers it, and it needs the
/// worker's `email:` settings ([`Catalog::with_email`](crate::Catalog::with_email)) to send.
#[derive(Debug)]
pub struct SendEmail;

/// One recipient or several.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Recipients {
    /// A single address, as a JSON string.
    One(String),
    /// Several addresses, as a JSON array of strings.
    Many(Vec<String>),
}

/// Payload of the `send_email` kind.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendEmailPayload {
    /// `user@example.com` or `Name <user@example.com>`, or a list of them (at most
    /// `tasks.email_max_recipients`); each gets a message of their own.
    #[schema(inline)]
    pub to: Recipients,
    /// One line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// An HTML alternative to `text`, for clients that show HTML.
    #[serde(default)]
    pub html: Option<String>,
}

impl SendEmailPayload {
    /// The recipients, parsed, each error naming its entry.
    fn recipients(&self) -> Result<Vec<Mailbox>, Invalid> {
        let parse = |s: &str, field: String| {
            s.parse::<Mailbox>()
                .map_err(|e| Invalid::new(field, format!("`{s}` is not an email address: {e}")))
        };
        match &self.to {
            Recipients::One(s) => Ok(vec![parse(s, "payload.to".into())?]),
            Recipients::Many(list) => list
                .iter()
                .enumerate()
                .map(|(i, s)| parse(s, format!("payload.to[{i}]")))
                .collect(),
        }
    }
}

/// Result of the `send_email` kind: who got the message and who refused it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SendEmailResult {
    /// `smtp` or `file` (the `email.transport` setting).
    #[schema(example = "smtp")]
    pub transport: String,
    /// Recipients the message went to, as mailboxes (`Name <user@example.com>`).
    pub sent: Vec<String>,
    /// Recipients the server refused for good (SMTP 5xx).
    #[schema(inline)]
    pub rejected: Vec<RejectedRecipient>,
}

/// A recipient the server refused for good.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedRecipient {
    /// The recipient as given in the payload.
    pub to: String,
    /// The server's answer.
    pub error: String,
}

impl TaskKind for SendEmail {
    type Payload = SendEmailPayload;
    type Output = SendEmailResult;
    const NAME: &'static str = "send_email";
    const SUMMARY: &'static str = "Sends a text (optionally HTML) email, one message per recipient, over SMTP or into .eml files. Not idempotent.";
    const IDEMPOTENT: bool = false;

    fn example() -> Value {
        json!({
            "to": ["ada@example.com", "Grace Hopper <grace@example.com>"],
            "subject": "Your report is ready",
            "text": "Hello,\n\nthe report you asked for is attached to your account.\n",
            "html": "<p>Hello,</p><p>the report you asked for is attached to your account.</p>"
        })
    }

    fn check(p: &SendEmailPayload, limits: &Limits) -> Result<(), Invalid> {
        let to = p.recipients()?;
        if to.is_empty() || to.len() > limits.email_max_recipients {
            return Err(Invalid::new(
                "payload.to",
                format!(
                    "must name 1 to {} recipients (tasks.email_max_recipients)",
                    limits.email_max_recipients
                ),
            ));
        }
        if p.subject.chars().any(char::is_control) {
            return Err(Invalid::new(
                "payload.subject",
                "must be one line without control characters",
            ));
        }
        Ok(())
    }

    /// The recipient count and the subject's one-line rule, as [`SendEmail::check`] has them.
    fn document(schema: &mut Value, limits: &Limits) {
        let max = limits.email_max_recipients;
        schema["properties"]["to"] = json!({
            "description": schema["properties"]["to"]["description"],
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": max},
            ],
        });
        // char::is_control is Unicode's Cc: U+0000–U+001F and U+007F–U+009F.
        schema["properties"]["subject"]["pattern"] = json!("^[^\\u0000-\\u001f\\u007f-\\u009f]*$");
    }

    async fn run(ctx: TaskContext, p: SendEmailPayload) -> Result<SendEmailResult, Failure> {
        let to = p
            .recipients()
            .map_err(|e| Failure::permanent("invalid_payload", e.to_string()))?;
        let mailer = ctx.services().mailer()?;
        let n = to.len();
        let mut sent = Vec::new();
        let mut rejected = Vec::new();
        ctx.report(0, format!("0 of {n} recipients done"));
        for (i, rcpt) in to.into_iter().enumerate() {
            let message = mailer.compose(&rcpt, &p)?;
            let outcome = tokio::select! {
                o = mailer.send(message) => o,
                _ = ctx.cancelled() => return Err(Failure::permanent(
                    "cancelled",
                    format!("cancelled after sending to {} of {n} recipients", sent.len()),
                )),
            };
            match outcome {
                Ok(()) => sent.push(rcpt.to_string()),
                Err(Refusal::Recipient(why)) => {
                    tracing::warn!(recipient = %rcpt, error = %why, "recipient refused");
                    rejected.push(RejectedRecipient {
                        to: rcpt.to_string(),
                        error: why,
                    });
                }
                Err(Refusal::Attempt(mut f)) => {
                    f.message = format!(
                        "{} (after sending to {} of {n} recipients)",
                        f.message,
                        sent.len()
                    );
                    return Err(f);
                }
            }
            ctx.report(
                ((i + 1) * 100 / n) as u8,
                format!("{} of {n} recipients done", i + 1),
            );
        }
        if sent.is_empty() {
            return Err(Failure::permanent(
                "rejected",
                format!(
                    "every recipient was refused: {}",
                    serde_json::to_value(&rejected).unwrap_or_default()
                ),
            ));
        }
        Ok(SendEmailResult {
            transport: mailer.name().to_owned(),
            sent,
            rejected,
        })
    }
}

/// Why one message did not go out.
enum Refusal {
    /// The server refused this recipient for good; the others may still be sent.
    Recipient(String),
    /// The attempt cannot go on.
    Attempt(Failure),
}

/// The process's mail transport, built once from the `email:` settings.
pub(crate) struct Mailer {
    from: Mailbox,
    via: Via,
}

enum Via {
    /// Pooled: messages of all tasks share a few connections.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File {
        transport: AsyncFileTransport<Tokio1Executor>,
        dir: PathBuf,
    },
}

impl Mailer {
    pub(crate) fn from_settings(s: &EmailSettings) -> Result<Self, String> {
        let from: Mailbox = s
            .from
            .parse()
            .map_err(|e| format!("email.from `{}` is not a mailbox: {e}", s.from))?;
        let via = match s.transport {
            EmailTransport::File => Via::File {
                transport: AsyncFileTransport::new(&s.file_dir),
                dir: s.file_dir.clone(),
            },
            EmailTransport::Smtp => {
                let smtp = &s.smtp;
                let tls = |host: &str| {
                    TlsParameters::new(host.to_owned())
                        .map_err(|e| format!("email.smtp TLS for `{host}`: {e}"))
                };
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                    .port(smtp.port)
                    .timeout(Some(smtp.timeout()));
                b = match smtp.tls {
                    SmtpTls::None => b.tls(Tls::None),
                    SmtpTls::Starttls => b.tls(Tls::Required(tls(&smtp.host)?)),
                    SmtpTls::Tls => b.tls(Tls::Wrapper(tls(&smtp.host)?)),
                };
                if !smtp.username.is_empty() {
                    b = b.credentials(Credentials::new(
                        smtp.username.clone(),
                        smtp.password.clone(),
                    ));
                }
                Via::Smtp(b.build())
            }
        };
        Ok(Self { from, via })
    }

    fn name(&self) -> &'static str {
        match self.via {
            Via::Smtp(_) => "smtp",
            Via::File { .. } => "file",
        }
    }

    fn compose(&self, to: &Mailbox, p: &SendEmailPayload) -> Result<Message, Failure> {
        let b = Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(&p.subject)
            .message_id(None);
        match &p.html {
            None => b.header(ContentType::TEXT_PLAIN).body(p.text.clone()),
            Some(html) => b.multipart(MultiPart::alternative_plain_html(
                p.text.clone(),
                html.clone(),
            )),
        }
        .map_err(|e| Failure::permanent("invalid_message", e.to_string()))
    }

    async fn send(&self, message: Message) -> Result<(), Refusal> {
        match &self.via {
            Via::Smtp(t) => t.send(message).await.map(drop).map_err(smtp_refusal),
            Via::File { transport, dir } => {
                tokio::fs::create_dir_all(dir).await.map_err(|e| {
                    Refusal::Attempt(Failure::retryable(
                        "file_transport",
                        format!("cannot create {}: {e}", dir.display()),
                    ))
                })?;
                transport.send(message).await.map(drop).map_err(|e| {
                    Refusal::Attempt(Failure::retryable(
                        "file_transport",
                        format!("cannot write into {}: {e}", dir.display()),
                    ))
                })
            }
        }
    }
}

/// SMTP's own split: 5xx is final, 4xx is "try again later". Transport trouble is
/// retryable, except a TLS failure or a server that does not speak SMTP, which another
/// attempt would meet again.
fn smtp_refusal(e: lettre::transport::smtp::Error) -> Refusal {
    let message = e.to_string();
    if e.is_permanent() {
        Refusal::Recipient(message)
    } else if e.is_transient() {
        Refusal::Attempt(Failure::retryable("smtp_transient", message))
    } else if e.is_timeout() {
        Refusal::Attempt(Failure::retryable("timeout", message))
    } else if e.is_tls() {
        Refusal::Attempt(Failure::permanent("smtp_tls", message))
    } else if e.is_response() || e.is_client() {
        Refusal::Attempt(Failure::permanent("smtp_protocol", message))
    } else {
        Refusal::Attempt(Failure::retryable("smtp_connection", message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::testing::payload;

    fn check(v: Value) -> Result<(), Invalid> {
        SendEmail::check(&payload::<SendEmail>(v)?, &Limits::default())
    }

    #[test]
    fn validation_names_the_field() {
        assert!(check(SendEmail::example()).is_ok());
        assert!(check(json!({"to": "a@example.com", "subject": "s", "text": "t"})).is_ok());
        let e = check(json!({"to": "nobody", "subject": "s", "text": "t"})).unwrap_err();
        assert_eq!(e.field, "payload.to");
        assert!(e.message.contains("nobody"), "{e}");
        let e =
            check(json!({"to": ["a@example.com", "b@"], "subject": "s", "text": "t"})).unwrap_err();
        assert_eq!(e.field, "payload.to[1]");
        assert_eq!(
            check(json!({"to": [], "subject": "s", "text": "t"}))
                .unwrap_err()
                .field,
            "payload.to"
        );
        let many: Vec<String> = (0..101).map(|i| format!("u{i}@example.com")).collect();
        assert_eq!(
            check(json!({"to": many, "subject": "s", "text": "t"}))
                .unwrap_err()
                .field,
            "payload.to"
        );
        assert_eq!(
            check(json!({"to": "a@example.com", "subject": "s\r\nBcc: x@evil", "text": "t"}))
                .unwrap_err()
                .field,
            "payload.subject"
        );
        assert_eq!(
            check(json!({"to": "a@example.com", "text": "t"}))
                .unwrap_err()
                .field,
            "payload"
        );
        assert_eq!(
            check(json!({"to": "a@example.com", "subject": "s", "text": "t", "cc": "x"}))
                .unwrap_err()
                .field,
            "payload.cc"
        );
    }

    #[test]
    fn a_bad_from_address_is_a_configuration_error() {
        let mut s = errand_core::Settings::load_from(
            errand_core::settings::Environment::Local,
            &std::env::temp_dir().join("errand-no-config-here"),
        )
        .unwrap()
        .email;
        s.from = "not a mailbox".into();
        let e = Mailer::from_settings(&s).err().unwrap();
        assert!(e.contains("email.from"), "{e}");
    }
}
