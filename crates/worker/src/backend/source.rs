//! errand's apalis backend: the source of one queue's tasks for one apalis worker.
//!
//! apalis drives it (`poll_ready`, `poll_next`, `poll_close`) and asks for a task only when
//! the worker has a free slot. Each fetch is one script call that takes up to as many ready
//! tasks as there are free slots and claims them (queued -> running, lease taken) in the
//! same step (`fetch.lua`), so a task is never handed out without its claim, and none waits
//! claimed in a buffer. At most one fetch is in flight per queue; slots freed meanwhile are
//! asked for together by the next one, so under load a fetch takes many tasks at once.
//!
//! When a fetch finds fewer tasks than it asked for, the queue is empty: the next fetch
//! waits for a wake-up (a submit's PUBLISH, or the fallback tick; see `wake.rs`). A wake-up
//! that arrives while a fetch is in flight is kept by the coalescing signal and answered by
//! another fetch, never lost.
//!
//! A fetch never kills the worker: a Redis error is logged and the fetch is sent again after
//! a backoff (50 ms doubling to 5 s), under the same token, so claims a lost reply made are
//! answered by the retry rather than stranded; apalis sees nothing but a quiet source. On shutdown,
//! claims not yet handed to apalis (a fetch that landed as the worker stopped) are given
//! back to the head of the queue as if never fetched.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use apalis_core::{
    backend::{Backend, BackendConfig, finalize::Ephemeral},
    layers::Identity,
    task::{Task, task_id::RandomId},
    worker::context::WorkerContext,
};
use chrono::Utc;
use errand_core::{
    StoreError, TaskStore,
    store::{Claimed, Fetched},
};
use futures::{FutureExt, Stream, future::BoxFuture};

use super::slots::{SlotGuard, Slots};
use crate::wake::Wake;

/// What apalis hands errand's handler: a claimed task and the slot it holds.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub claimed: Claimed,
    pub slot: SlotGuard,
}

/// Never produced: a fetch error is retried inside the backend (apalis would end the
/// worker on any error of its source).
#[derive(Debug, thiserror::Error)]
#[error("errand's backend does not fail")]
pub(crate) struct Never;

/// The longest wait between fetches after Redis errors.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct ErrandBackend {
    store: TaskStore,
    queue: String,
    /// The worker process's name, written into each claimed record.
    worker: String,
    lease: Duration,
    /// Most tasks one fetch may take (`worker.batch_size`).
    max_fetch: usize,
    slots: Slots,
    wake: Wake,
    buffer: VecDeque<Claimed>,
    fetching: Option<BoxFuture<'static, (usize, Result<Fetched, StoreError>)>>,
    /// The last fetch filled its request: the queue may hold more, fetch without a wake-up.
    more: bool,
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
    failures: u32,
    releasing: Option<BoxFuture<'static, ()>>,
    /// The token of the fetch to send: kept after an error, so the retry is answered with
    /// whatever the failed call claimed (see `fetch.lua`).
    token: Option<(String, usize)>,
}

impl ErrandBackend {
    pub(crate) fn new(
        store: TaskStore,
        queue: &str,
        worker: &str,
        lease: Duration,
        max_fetch: usize,
        slots: Slots,
        wake: Wake,
    ) -> Self {
        Self {
            store,
            queue: queue.to_owned(),
            worker: worker.to_owned(),
            lease,
            max_fetch: max_fetch.max(1),
            slots,
            wake,
            buffer: VecDeque::new(),
            fetching: None,
            // A fresh worker looks at once: work may have queued while nobody served it.
            more: true,
            backoff: None,
            failures: 0,
            releasing: None,
            token: None,
        }
    }

    fn start_fetch(&mut self) {
        let (token, n) = self.token.take().unwrap_or_else(|| {
            (
                ulid::Ulid::generate().to_string(),
                self.slots.free().min(self.max_fetch),
            )
        });
        self.token = Some((token.clone(), n));
        let (store, queue, worker, lease) = (
            self.store.clone(),
            self.queue.clone(),
            self.worker.clone(),
            self.lease,
        );
        self.fetching = Some(
            async move {
                let fetched = errand_core::telemetry::redis_call(
                    "fetch",
                    store.fetch(&queue, n, &worker, lease, &token, Utc::now()),
                );
                (n, fetched.await)
            }
            .boxed(),
        );
    }

    /// Polls the fetch in flight, if any, into the buffer. `Pending` while it runs.
    fn poll_fetch(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(f) = self.fetching.as_mut() else {
            return Poll::Ready(());
        };
        let (asked, result) = ready!(f.poll_unpin(cx));
        self.fetching = None;
        match result {
            Ok(fetched) => {
                self.failures = 0;
                self.token = None;
                self.more = fetched.claimed.len() + fetched.dropped >= asked;
                if fetched.dropped > 0 {
                    tracing::debug!(queue = %self.queue, dropped = fetched.dropped, "entries of tasks no longer waiting dropped");
                }
                self.buffer.extend(fetched.claimed);
            }
            Err(e) => {
                self.failures += 1;
                let wait = Duration::from_millis(50)
                    .saturating_mul(1 << self.failures.min(7))
                    .min(MAX_BACKOFF);
                tracing::warn!(queue = %self.queue, error = %e, retry_in_ms = wait.as_millis() as u64, "fetch failed; backing off");
                self.backoff = Some(Box::pin(tokio::time::sleep(wait)));
                self.more = true;
            }
        }
        Poll::Ready(())
    }
}

impl Backend for ErrandBackend {
    type Task = Task<Delivery>;
    type Error = Never;

    fn poll_ready(&mut self, _: &mut Context<'_>, _: &WorkerContext) -> Poll<Result<(), Never>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Task<Delivery>, Never>>> {
        loop {
            if let Some(claimed) = self.buffer.pop_front() {
                let slot = self.slots.take();
                return Poll::Ready(Some(Ok(Task::new(Delivery { claimed, slot }))));
            }
            ready!(self.poll_fetch(cx));
            if !self.buffer.is_empty() {
                continue;
            }
            if let Some(b) = self.backoff.as_mut() {
                ready!(b.as_mut().poll(cx));
                self.backoff = None;
            }
            // Consume any wake-up first, so one that lands during the fetch below is kept.
            let woken = Pin::new(&mut self.wake).poll_next(cx).is_ready();
            if !(woken || std::mem::take(&mut self.more)) {
                // Empty queue and no wake-up: the wake signal has our waker.
                return Poll::Pending;
            }
            self.start_fetch();
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, _: &WorkerContext) -> Poll<Result<(), Never>> {
        ready!(self.poll_fetch(cx));
        if self.releasing.is_none() && !self.buffer.is_empty() {
            let claims: Vec<Claimed> = self.buffer.drain(..).collect();
            let (store, queue) = (self.store.clone(), self.queue.clone());
            self.releasing = Some(
                async move {
                    match store.release(&queue, &claims, Utc::now()).await {
                        Ok(n) => tracing::info!(queue = %queue, released = n, "unrun claims given back"),
                        // Their leases lapse and upkeep re-runs them: nothing is lost.
                        Err(e) => tracing::warn!(queue = %queue, error = %e, "unrun claims not given back; their leases will lapse"),
                    }
                }
                .boxed(),
            );
        }
        if let Some(r) = self.releasing.as_mut() {
            ready!(r.poll_unpin(cx));
            self.releasing = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl BackendConfig for ErrandBackend {
    type Args = Delivery;
    type Id = RandomId;
    type Kind = Ephemeral;
    type Config = ();
    type Layer = Identity;

    fn config(&self) -> &() {
        &()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Identity {
        Identity::new()
    }
}
