//! Which queue an id's task lives in. A queue's keys share its hash slot, so everything
//! that starts from an id alone (a read, a cancel, a retry) first reads the id's pointer
//! (`Layout::pointer`), written when the task was created: one GET in the id's own slot.

use chrono::{DateTime, Utc};

use super::{StoreError, TaskStore};

/// Where an id's pointer says its task is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Located {
    /// In this queue (its record may still have just expired).
    Queue(String),
    /// Its record expired at this instant (a tombstone pointer the layout before wrote).
    Expired(Option<DateTime<Utc>>),
    /// No pointer: no task has the id now (a tombstone may say one had, `tombstones`).
    Unknown,
}

impl TaskStore {
    pub(super) async fn locate(&self, id: &str) -> Result<Located, StoreError> {
        let mut c = self.conn.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(self.layout.pointer(id))
            .query_async(&mut c)
            .await?;
        Ok(parse(v))
    }
}

fn parse(v: Option<String>) -> Located {
    match v {
        None => Located::Unknown,
        Some(v) => match v.strip_prefix('~') {
            Some(ms) => Located::Expired(
                ms.parse()
                    .ok()
                    .and_then(DateTime::<Utc>::from_timestamp_millis),
            ),
            // A cluster's confirmed pointer carries its task's created ms.
            None => Located::Queue(match v.rsplit_once('@') {
                Some((q, c)) if c.bytes().all(|b| b.is_ascii_digit()) => q.to_owned(),
                _ => v,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_is_a_queue_confirmed_or_not_or_a_tombstone() {
        assert_eq!(parse(None), Located::Unknown);
        assert_eq!(
            parse(Some("emails".into())),
            Located::Queue("emails".into())
        );
        assert_eq!(
            parse(Some("emails@1700000000000".into())),
            Located::Queue("emails".into())
        );
        assert_eq!(
            parse(Some("~1700000000000".into())),
            Located::Expired(DateTime::from_timestamp_millis(1_700_000_000_000))
        );
    }
}
