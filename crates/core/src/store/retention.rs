//! How long errand keeps what outlives a task's record: the tombstone that says an id
//! expired, and a webhook delivery no worker has sent yet (docs/task-lifecycle.md).

use std::time::Duration;

use crate::settings::Settings;

/// What a store keeps past a record, from the settings every process shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long an expired id still answers 404 `task-expired` rather than
    /// `task-not-found` (`tasks.tombstone_secs`; zero: not at all).
    pub tombstones: Duration,
    /// How long a webhook delivery is kept after its task ended: `webhooks.retry_window_secs`
    /// plus its last attempt's lease and a margin. Written on the delivery as its TTL.
    pub webhooks: Duration,
}

/// Room past a delivery's last attempt for recording its outcome.
const WEBHOOK_MARGIN: Duration = Duration::from_secs(60);

impl Retention {
    /// The retention `settings` ask for.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            tombstones: Duration::from_secs(settings.tasks.tombstone_secs),
            webhooks: Duration::from_secs(settings.webhooks.retry_window_secs)
                + settings.webhooks.lease()
                + WEBHOOK_MARGIN,
        }
    }

    /// Tombstone time in ms (what the scripts take).
    pub(super) fn tombstone_ms(&self) -> u64 {
        self.tombstones.as_millis() as u64
    }
}

impl Default for Retention {
    /// The shipped defaults (`config/base.yaml`): a day of tombstones, a day of retries.
    fn default() -> Self {
        Self {
            tombstones: Duration::from_secs(86_400),
            webhooks: Duration::from_secs(86_400 + 15) + WEBHOOK_MARGIN,
        }
    }
}
