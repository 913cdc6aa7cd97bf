//! Delivers completion webhooks from the outbox of the queues this process serves
//! (docs/webhooks.md).
//!
//! Each delivery is claimed with a lease (its due score moves past the attempt's time
//! bound), POSTed signed, and settled: delivered, retried after a doubling delay, or given up
//! once the retry window is spent or the destination is refused. A process killed
//! mid-attempt leaves the claim to lapse, and whichever worker looks next sends it again:
//! delivery is at least once, and the `webhook-id` stays the same so receivers can drop
//! duplicates. Nothing here touches the task's own state.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use errand_core::{
    TaskStore,
    settings::{WebhookSettings, policy_message},
    store::{ClaimedWebhook, Settle},
    task::{WebhookState, WebhookStatus},
};
use errand_kinds::PolicyResolver;
use serde_json::json;
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

/// Most of a failing answer's body kept in `last_error` (the rest is read up to
/// `webhooks.max_response_bytes` and dropped).
const ERROR_SNIPPET: usize = 200;

/// Runs until `stop`, then waits for the attempts in flight (each bounded by
/// `webhooks.timeout_ms`) so their outcomes are recorded rather than left to lapse, unless
/// `abandon` comes first (the grace ran out, or the stop was forced): those attempts are
/// dropped, their claims lapse and the deliveries are sent again later (at least once).
pub(crate) async fn run(
    store: TaskStore,
    settings: WebhookSettings,
    queues: Vec<String>,
    stop: CancellationToken,
    abandon: CancellationToken,
) {
    if settings.secrets.is_empty() {
        tracing::info!("webhooks.secrets is empty: this worker sends no webhooks");
        return;
    }
    let http = match client(&settings) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; no webhooks sent");
            return;
        }
    };
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let mut inflight = JoinSet::new();
    while !stop.is_cancelled() {
        while inflight.try_join_next().is_some() {}
        let mut claimed = 0;
        for q in &queues {
            let free = slots.available_permits();
            if free == 0 || stop.is_cancelled() {
                break;
            }
            // A claim cut short by the stop is one atomic script: either nothing was
            // claimed, or its claims lapse and are sent again.
            let claims = tokio::select! {
                c = store.claim_webhooks(q, settings.lease(), free) => c,
                () = stop.cancelled() => break,
            };
            match claims {
                Ok(claims) => {
                    for c in claims {
                        claimed += 1;
                        let permit = slots.clone().acquire_owned().await.expect("never closed");
                        let (store, settings, http) =
                            (store.clone(), settings.clone(), http.clone());
                        inflight.spawn(async move {
                            attempt(&store, &settings, &http, c).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(queue = %q, error = %e, "claiming webhook deliveries failed");
                }
            }
        }
        if claimed == 0 || slots.available_permits() == 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(settings.poll_ms)) => {}
                _ = stop.cancelled() => {}
            }
        }
    }
    let abandoned = tokio::select! {
        () = async { while inflight.join_next().await.is_some() {} } => false,
        () = abandon.cancelled() => true,
    };
    if abandoned {
        tracing::warn!(
            attempts = inflight.len(),
            "webhook attempts in flight abandoned; their claims lapse and they are sent again"
        );
        inflight.abort_all();
        while inflight.join_next().await.is_some() {}
    }
}

/// One attempt of one delivery, sent and settled.
async fn attempt(
    store: &TaskStore,
    settings: &WebhookSettings,
    http: &reqwest::Client,
    c: ClaimedWebhook,
) {
    let body = serde_json::to_vec(&json!({
        "type": c.event.type_name(),
        "timestamp": c.data.get("finished_at").cloned().unwrap_or_else(|| json!(Utc::now())),
        "data": c.data,
    }))
    .expect("a JSON value serializes");
    let sent = send(settings, http, &c, body).await;
    let mut status = WebhookStatus {
        id: c.id.clone(),
        event: c.event,
        state: WebhookState::Pending,
        attempts: c.attempt,
        last_status: sent.status,
        last_error: None,
        next_attempt_at: None,
        delivered_at: None,
    };
    let settle = match sent.failure {
        None => {
            status.state = WebhookState::Delivered;
            status.delivered_at = Some(Utc::now());
            tracing::info!(delivery = %c.id, attempt = c.attempt, status = ?sent.status, "webhook delivered");
            Settle::Done
        }
        Some(Failure { why, permanent }) => {
            let retry = if permanent {
                None
            } else {
                settings.retry_delay(c.attempt, c.since_end)
            };
            match retry {
                Some(delay) => {
                    status.next_attempt_at =
                        Some(Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default());
                    tracing::info!(delivery = %c.id, attempt = c.attempt, error = %why, retry_in_ms = delay.as_millis() as u64, "webhook attempt failed");
                    status.last_error = Some(why);
                    Settle::Retry(delay)
                }
                None => {
                    status.state = WebhookState::Failed;
                    let why = if permanent {
                        why
                    } else {
                        format!(
                            "given up after {} attempts over {} s (webhooks.retry_window_secs): {why}",
                            c.attempt,
                            c.since_end.as_secs()
                        )
                    };
                    tracing::warn!(delivery = %c.id, error = %why, "webhook given up");
                    status.last_error = Some(why);
                    Settle::Done
                }
            }
        }
    };
    match store.settle_webhook(&c, settle, &status).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(delivery = %c.id, attempt = c.attempt, "webhook claim lapsed; a later attempt owns it");
        }
        // The claim lapses and the delivery is attempted again: at least once.
        Err(e) => tracing::warn!(delivery = %c.id, error = %e, "webhook outcome not recorded"),
    }
}

struct Sent {
    status: Option<u16>,
    failure: Option<Failure>,
}

struct Failure {
    why: String,
    /// No retry can help (the destination is refused).
    permanent: bool,
}

async fn send(
    settings: &WebhookSettings,
    http: &reqwest::Client,
    c: &ClaimedWebhook,
    body: Vec<u8>,
) -> Sent {
    let fail = |status, why: String, permanent| Sent {
        status,
        failure: Some(Failure { why, permanent }),
    };
    // The policy may have changed since submit, and a literal address never reaches the
    // resolver: check what the URL says again.
    let url = match settings.check_url(&c.url) {
        Ok(u) => u,
        Err(why) => return fail(None, format!("refused: {why}"), true),
    };
    let timestamp = Utc::now().timestamp();
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &c.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            settings.signature(&c.id, timestamp, &body),
        )
        .body(body)
        .send()
        .await;
    let mut res = match res {
        Ok(r) => r,
        Err(e) => {
            let refused = refusal(&e);
            let permanent = refused.is_some();
            return fail(None, refused.unwrap_or_else(|| chain(&e)), permanent);
        }
    };
    let code = res.status();
    // Read (and drop) a bounded part of the answer, so a receiver cannot make the worker
    // hold an endless body; the client's timeout bounds the time.
    let mut read = 0;
    let mut snippet = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(chunk)) => {
                let keep = ERROR_SNIPPET.saturating_sub(snippet.len()).min(chunk.len());
                snippet.extend_from_slice(&chunk[..keep]);
                read += chunk.len();
                if read >= settings.max_response_bytes {
                    break;
                }
            }
            Ok(None) => break,
            // The status is what counts; a body cut short does not undo a 2xx.
            Err(_) => break,
        }
    }
    if code.is_success() {
        Sent {
            status: Some(code.as_u16()),
            failure: None,
        }
    } else {
        let text = String::from_utf8_lossy(&snippet);
        let text = text.trim();
        let why = if text.is_empty() {
            format!("answered {}", code.as_u16())
        } else {
            format!("answered {}: {text}", code.as_u16())
        };
        fail(Some(code.as_u16()), why, false)
    }
}

/// The error and its causes, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        source = c.source();
    }
    s
}

fn refusal(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(d) = s.downcast_ref::<Refused>() {
            return Some(format!("refused: {}", d.0));
        }
        source = s.source();
    }
    None
}

/// The HTTP client deliveries go through: bounded in time, never redirected (a redirect
/// could lead past the destination policy, and Standard Webhooks receivers answer
/// directly), and resolving names through the policy.
fn client(settings: &WebhookSettings) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("errand-webhooks/", env!("CARGO_PKG_VERSION")))
        .timeout(settings.timeout())
        .connect_timeout(settings.timeout())
        .redirect(reqwest::redirect::Policy::none());
    if !settings.destinations.is_open() {
        b = b.dns_resolver(Arc::new(PolicyResolver::<Refused>::new(Arc::new(
            settings.destinations.clone(),
        ))));
    }
    b.build()
}

/// A destination `webhooks.destinations` refuses; travels inside reqwest's error.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The policy's reason, worded for `webhooks.destinations`.
impl From<String> for Refused {
    fn from(why: String) -> Self {
        Self(policy_message(&why))
    }
}
