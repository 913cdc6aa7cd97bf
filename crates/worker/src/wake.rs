//! Waking idle workers the moment a task is submitted.
//!
//! Every script that makes a task ready PUBLISHes on `<prefix>:wake:<queue>`; a dedicated
//! subscriber connection turns that into a coalescing signal that errand's backend waits on
//! when its queue is empty (see `backend/source.rs`). The signal is a flag, so one raised
//! while a fetch is in flight is answered by the next fetch, never lost. A tokio interval
//! signals too, as a fallback that bounds pickup time if a message is missed (e.g. while
//! the subscriber reconnects).

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use errand_core::shutdown::Shutdown;
use futures::{Stream, task::AtomicWaker};

/// A coalescing wake signal: any number of signals before the next poll yield one item.
#[derive(Clone, Default)]
pub(crate) struct Wake(Arc<(AtomicBool, AtomicWaker)>);

impl Wake {
    pub(crate) fn signal(&self) {
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

/// Feeds `wake` from the queue's wake channel and a fallback interval until the process
/// stops taking work; both loops are the shutdown's work loops.
pub(crate) fn spawn(
    shutdown: &Shutdown,
    client: Vec<redis::Client>,
    channel: String,
    fallback: Duration,
    wake: Wake,
) {
    let stop = shutdown.work();
    let w = wake.clone();
    let s = stop.clone();
    shutdown.spawn_work(async move {
        let mut tick = tokio::time::interval(fallback);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => w.signal(),
                _ = s.cancelled() => return,
            }
        }
    });
    let on_connect = wake.clone();
    shutdown.spawn_work(errand_core::store::subscription(
        client,
        channel,
        stop,
        move || on_connect.signal(),
        move |_| wake.signal(),
    ));
}

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
