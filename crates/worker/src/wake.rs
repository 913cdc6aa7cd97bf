//! Waking idle workers the moment a task is submitted.
//!
//! apalis-redis 1.0's own wake-up never fires (its push always goes through the scheduled
//! set), so an idle worker would only look for work on its heartbeat. errand's submit script
//! PUBLISHes on `<prefix>:wake:<queue>`; a dedicated subscriber connection turns that into a
//! coalescing signal that drives apalis's fetch. A tokio interval signals too, as a fallback
//! that bounds pickup time if a wake-up is lost (e.g. one that lands mid-fetch, or while the
//! subscriber reconnects). apalis's own `poll_with_interval` is not used: it was measured
//! to stall.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, task::AtomicWaker};
use tokio_util::sync::CancellationToken;

/// A coalescing wake signal: any number of signals before the next poll yield one item.
#[derive(Clone, Default)]
pub struct Wake(Arc<(AtomicBool, AtomicWaker)>);

impl Wake {
    pub fn signal(&self) {
        self.0.0.store(true, Ordering::Release);
        self.0.1.wake();
    }
}

impl Stream for Wake {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if self.0.0.swap(false, Ordering::AcqRel) {
            return Poll::Ready(Some(()));
        }
        self.0.1.register(cx.waker());
        if self.0.0.swap(false, Ordering::AcqRel) {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

/// Feeds `wake` from the queue's wake channel and a fallback interval until `stop`.
pub fn spawn(
    client: redis::Client,
    channel: String,
    fallback: Duration,
    wake: Wake,
    stop: CancellationToken,
) {
    let w = wake.clone();
    let s = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(fallback);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => w.signal(),
                _ = s.cancelled() => return,
            }
        }
    });
    // apalis consumes a wake that arrives while a fetch is in flight without fetching again
    // (measured: a submit then waits for the fallback tick). So every wake is echoed a
    // moment later, twice; echoes coalesce like any signal, and one extra empty fetch per
    // burst is the whole cost.
    let echo = std::sync::Arc::new(tokio::sync::Notify::new());
    let (e, w, s) = (echo.clone(), wake.clone(), stop.clone());
    tokio::spawn(async move {
        // Echoes are timed from the latest wake, so a wake that lands during an echo's
        // fetch gets echoes of its own.
        let mut pending: &[Duration] = &[];
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = e.notified() => {
                    pending = &ECHOES;
                    next = tokio::time::Instant::now() + ECHOES[0];
                }
                _ = tokio::time::sleep_until(next), if !pending.is_empty() => {
                    w.signal();
                    pending = &pending[1..];
                    if let Some(gap) = pending.first() {
                        next = tokio::time::Instant::now() + *gap;
                    }
                }
                _ = s.cancelled() => return,
            }
        }
    });
    let on_connect = wake.clone();
    errand_core::store::listen(
        client,
        channel,
        stop,
        move || on_connect.signal(),
        move |_| {
            wake.signal();
            echo.notify_one();
        },
    );
}

/// Delays of the echoes after a wake-up, each measured from the one before.
const ECHOES: [Duration; 3] = [
    Duration::from_millis(1),
    Duration::from_millis(4),
    Duration::from_millis(20),
];

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn many_signals_before_a_poll_coalesce_into_one_item() {
        let mut w = Wake::default();
        for _ in 0..100 {
            w.signal();
        }
        assert_eq!(w.next().await, Some(()));
        let again = tokio::time::timeout(Duration::from_millis(20), w.next()).await;
        assert!(again.is_err(), "no second item without a new signal");
    }
}
