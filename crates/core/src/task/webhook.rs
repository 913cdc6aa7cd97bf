//! A task's completion webhook: what the submitter asked for (`callback`) and how its
//! delivery is going (`webhook`), both kept on the task record so `GET /v1/tasks/{id}`
//! answers "was I told?" without a second lookup. Delivery itself is docs/webhooks.md.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A task event a callback can ask for: the terminal states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvent {
    /// The task succeeded.
    Succeeded,
    /// The task failed for good.
    Failed,
    /// The task was cancelled.
    Cancelled,
}

impl WebhookEvent {
    /// Every event, what a callback asks for when it names none.
    pub const ALL: [WebhookEvent; 3] = [Self::Succeeded, Self::Failed, Self::Cancelled];

    /// The name the store scripts and the `events` list use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The payload's `type`.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Succeeded => "task.succeeded",
            Self::Failed => "task.failed",
            Self::Cancelled => "task.cancelled",
        }
    }
}

impl std::str::FromStr for WebhookEvent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| format!("unknown webhook event `{s}`"))
    }
}

fn all_events() -> Vec<WebhookEvent> {
    WebhookEvent::ALL.to_vec()
}

/// Where to POST when the task ends, and for which endings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    /// `http` or `https` URL; checked at submit against `webhooks.destinations`. The
    /// bound is `settings::MAX_CALLBACK_URL_BYTES` (a unit test holds them together).
    pub url: String,
    /// The endings to be told about; default all three.
    #[serde(default = "all_events")]
    pub events: Vec<WebhookEvent>,
}

impl Callback {
    /// Whether a task ending with `e` is delivered.
    pub fn wants(&self, e: WebhookEvent) -> bool {
        self.events.contains(&e)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookState {
    /// Waiting for its first attempt or for a retry.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: the retry window ran out or the destination is refused.
    Failed,
}

/// The latest delivery of a task's webhook (a retried task that ends again gets a new one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookStatus {
    /// The delivery's `webhook-id` header: the same on every attempt, so receivers can
    /// drop duplicates.
    pub id: String,
    /// The end being reported.
    pub event: WebhookEvent,
    /// Pending, delivered or failed for good.
    pub state: WebhookState,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// HTTP status of the last attempt; null when none answered.
    #[serde(default)]
    pub last_status: Option<u16>,
    /// Why the last attempt failed; null when it did not.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the next attempt is due (`pending` only).
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the receiver accepted it (`delivered` only).
    #[serde(default)]
    pub delivered_at: Option<DateTime<Utc>>,
}
