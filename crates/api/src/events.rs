//! Task events for long-poll and SSE. Every store script PUBLISHes "<id> <state>" lines on
//! `<prefix>:events` (one message per script call, a line per task it moved); each API process holds ONE subscription and fans messages out to the
//! requests watching that id, so a waiting request costs no Redis traffic until its task
//! changes. A request registers before it reads the record, so no change falls between.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use errand_core::shutdown::Shutdown;
use tokio::sync::mpsc;

type Watchers = HashMap<String, Vec<(u64, mpsc::Sender<String>)>>;

#[derive(Clone, Default)]
pub(crate) struct Events {
    watchers: Arc<Mutex<Watchers>>,
    next: Arc<AtomicU64>,
}

/// A registration for one task's events; dropping it unregisters.
pub(crate) struct Watch {
    pub rx: mpsc::Receiver<String>,
    events: Events,
    id: String,
    key: u64,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut w = self.events.lock();
        if let Some(list) = w.get_mut(&self.id) {
            list.retain(|(k, _)| *k != self.key);
            if list.is_empty() {
                w.remove(&self.id);
            }
        }
    }
}

impl Events {
    /// Starts the subscription on `shutdown`'s background tracker (reconnecting until its
    /// stop, then joined with the other loops).
    pub(crate) fn start(clients: Vec<redis::Client>, channel: String, shutdown: &Shutdown) -> Self {
        let events = Self::default();
        let e = events.clone();
        let on_connect = events.clone();
        shutdown.spawn_background(errand_core::store::subscription(
            clients,
            channel,
            shutdown.background(),
            // Changes published while disconnected were missed: wake every watcher to re-read.
            move || on_connect.broadcast("reconnected"),
            // One message carries the events of one script call, a line each.
            move |msg| {
                for line in msg.lines() {
                    if let Some((id, state)) = line.split_once(' ') {
                        e.dispatch(id, state);
                    }
                }
            },
        ));
        events
    }

    pub(crate) fn watch(&self, id: &str) -> Watch {
        // Small buffer: a watcher re-reads the record on each message, so a full buffer
        // (a burst of progress) loses nothing but redundant wake-ups.
        let (tx, rx) = mpsc::channel(8);
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(id.to_owned())
            .or_default()
            .push((key, tx));
        Watch {
            rx,
            events: self.clone(),
            id: id.to_owned(),
            key,
        }
    }

    fn dispatch(&self, id: &str, state: &str) {
        if let Some(list) = self.lock().get(id) {
            for (_, tx) in list {
                let _ = tx.try_send(state.to_owned());
            }
        }
    }

    fn broadcast(&self, what: &str) {
        for list in self.lock().values() {
            for (_, tx) in list {
                let _ = tx.try_send(what.to_owned());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watchers> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }
}
