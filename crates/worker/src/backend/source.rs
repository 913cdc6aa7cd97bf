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
//! answered by the retry rather than stranded; apalis sees nothing but a quiet source.
//!
//! On shutdown, claims not yet handed to apalis are given back to the head of the queue at
//! once, as if never fetched (`release.lua`), not when apalis closes the backend: apalis
//! calls `poll_close` only once the running tasks are done, and claims waiting that long
//! would hold leases nobody renews. So the fetch runs as a task of its own and puts its
//! claims in an [`Inbox`] shared with a watcher of the stop: each claim is either taken by
//! apalis or given back, never both, never neither.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, Mutex},
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
    shutdown::Shutdown,
    store::{Claimed, Fetched},
};
use futures::{FutureExt, Stream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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

/// Claims fetched and not yet handed to apalis. Closed when the process stops taking work:
/// what it holds then, and whatever a fetch lands afterwards, is given back.
#[derive(Debug, Clone, Default)]
struct Inbox(Arc<Mutex<InboxState>>);

#[derive(Debug, Default)]
struct InboxState {
    claims: VecDeque<Claimed>,
    closed: bool,
}

impl Inbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `claims` for apalis; once closed, hands them back to be released instead.
    fn offer(&self, claims: Vec<Claimed>) -> Vec<Claimed> {
        let mut s = self.lock();
        if s.closed {
            return claims;
        }
        s.claims.extend(claims);
        Vec::new()
    }

    fn is_empty(&self) -> bool {
        self.lock().claims.is_empty()
    }

    fn pop(&self) -> Option<Claimed> {
        self.lock().claims.pop_front()
    }

    /// Closes the inbox and takes what it holds.
    fn close(&self) -> Vec<Claimed> {
        let mut s = self.lock();
        s.closed = true;
        s.claims.drain(..).collect()
    }
}

/// Gives claims that will not be run back to their queue.
async fn release(store: &TaskStore, queue: &str, claims: Vec<Claimed>) {
    if claims.is_empty() {
        return;
    }
    match store.release(queue, &claims, Utc::now()).await {
        Ok(n) => tracing::info!(queue = %queue, released = n, "unrun claims given back"),
        // Their leases lapse and upkeep re-runs them: nothing is lost.
        Err(e) => {
            tracing::warn!(queue = %queue, error = %e, "unrun claims not given back; their leases will lapse");
        }
    }
}

/// A fetch's answer, its claims already in the inbox (or given back).
struct Landed {
    asked: usize,
    result: Result<Got, StoreError>,
}

/// What a fetch did: claimed, handled otherwise (dropped, or held for a limit), and when a
/// rate-limited task may go.
struct Got {
    claimed: usize,
    handled: usize,
    retry_in: Option<Duration>,
}

/// Longest a worker waits on a rate limit before it looks again (a limit changed at runtime
/// takes effect within this).
const MAX_HOLD: Duration = Duration::from_secs(1);

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
    inbox: Inbox,
    shutdown: Shutdown,
    /// Cancelled when the process stops taking work: no fetch starts after it.
    stop: CancellationToken,
    fetching: Option<JoinHandle<Landed>>,
    /// The last fetch filled its request: the queue may hold more, fetch without a wake-up.
    more: bool,
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
    failures: u32,
    /// The token of the fetch to send: kept after an error, so the retry is answered with
    /// whatever the failed call claimed (see `fetch.lua`).
    token: Option<(String, usize)>,
}

impl ErrandBackend {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: TaskStore,
        queue: &str,
        worker: &str,
        lease: Duration,
        max_fetch: usize,
        slots: Slots,
        wake: Wake,
        shutdown: &Shutdown,
    ) -> Self {
        let inbox = Inbox::default();
        let stop = shutdown.work();
        {
            let (inbox, store, queue, stop) =
                (inbox.clone(), store.clone(), queue.to_owned(), stop.clone());
            shutdown.spawn_work(async move {
                stop.cancelled().await;
                release(&store, &queue, inbox.close()).await;
            });
        }
        Self {
            store,
            queue: queue.to_owned(),
            worker: worker.to_owned(),
            lease,
            max_fetch: max_fetch.max(1),
            slots,
            wake,
            inbox,
            shutdown: shutdown.clone(),
            stop,
            fetching: None,
            // A fresh worker looks at once: work may have queued while nobody served it.
            more: true,
            backoff: None,
            failures: 0,
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
        let (store, queue, worker, lease, inbox) = (
            self.store.clone(),
            self.queue.clone(),
            self.worker.clone(),
            self.lease,
            self.inbox.clone(),
        );
        self.fetching = Some(self.shutdown.spawn_work(async move {
            let fetched = errand_core::telemetry::redis_call(
                "fetch",
                store.fetch(&queue, n, &worker, lease, &token, Utc::now()),
            )
            .await;
            let result = match fetched {
                Ok(Fetched {
                    claimed,
                    dropped,
                    held,
                    retry_in,
                }) => {
                    let got = claimed.len();
                    release(&store, &queue, inbox.offer(claimed)).await;
                    Ok(Got {
                        claimed: got,
                        handled: dropped + held,
                        retry_in,
                    })
                }
                Err(e) => Err(e),
            };
            Landed { asked: n, result }
        }));
    }

    /// Polls the fetch in flight, if any. `Pending` while it runs.
    fn poll_fetch(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(f) = self.fetching.as_mut() else {
            return Poll::Ready(());
        };
        let landed = ready!(f.poll_unpin(cx));
        self.fetching = None;
        let Landed { asked, result } = match landed {
            Ok(l) => l,
            Err(e) => Landed {
                asked: 0,
                result: Err(StoreError::Protocol(format!("fetch task ended: {e}"))),
            },
        };
        match result {
            Ok(got) => {
                self.failures = 0;
                self.token = None;
                self.more = got.claimed + got.handled >= asked;
                if let Some(wait) = got.retry_in {
                    // A rate limit holds tasks back and nothing will wake us for them: look
                    // again when the earliest may go (docs/flow-control.md).
                    self.backoff = Some(Box::pin(tokio::time::sleep(wait.min(MAX_HOLD))));
                    self.more = true;
                }
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
            if let Some(claimed) = self.inbox.pop() {
                let slot = self.slots.take();
                return Poll::Ready(Some(Ok(Task::new(Delivery { claimed, slot }))));
            }
            ready!(self.poll_fetch(cx));
            if !self.inbox.is_empty() {
                continue;
            }
            if self.stop.is_cancelled() {
                // Stopping: no new fetch; the stop watcher gives back what is left.
                return Poll::Pending;
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
        // A fetch in flight puts its claims in the closed inbox's hands (given back); the
        // stop watcher gave back the rest.
        ready!(self.poll_fetch(cx));
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use errand_core::{
        Settings,
        settings::Environment,
        store::{self, Layout, NewTask},
        task::{TaskId, TaskState},
    };
    use errand_testkit::{RedisServer, wait_for};

    use super::*;

    /// Claims a fetch makes as the process stops are given back at once, without waiting
    /// for apalis to close the backend (it does so only once the running tasks are done,
    /// and until then the claims would hold leases nobody renews).
    #[tokio::test]
    async fn claims_landing_while_stopping_are_given_back_at_once() {
        let redis = RedisServer::start().await;
        let mut settings = Settings::load_from(Environment::Local, Path::new("/nonexistent"))
            .expect("the embedded settings load");
        settings.redis.url = redis.url();
        let store = TaskStore::new(
            store::connect(&settings.redis).expect("connect"),
            Layout::new("stop"),
        );
        for order in ["fetch lands first", "stop comes first"] {
            let id = TaskId::generate();
            store
                .submit(
                    NewTask {
                        id: id.clone(),
                        kind: "noop".into(),
                        queue: "q".into(),
                        payload: serde_json::json!({}),
                        max_attempts: 1,
                        timeout_secs: None,
                        result_ttl_secs: 60,
                        run_at: None,
                        callback: None,
                        traceparent: None,
                        unique: None,
                        flow: Default::default(),
                        step: None,
                    },
                    Utc::now(),
                )
                .await
                .unwrap();
            let shutdown = Shutdown::new(Duration::from_secs(5));
            let mut backend = ErrandBackend::new(
                store.clone(),
                "q",
                "w",
                Duration::from_secs(60),
                10,
                Slots::new(10),
                Wake::default(),
                &shutdown,
            );
            if order == "stop comes first" {
                shutdown.work().cancel();
                backend.start_fetch();
            } else {
                backend.start_fetch();
                wait_for("the claim", Duration::from_secs(5), || async {
                    let r = store.get(&id).await.unwrap().unwrap();
                    (r.state == TaskState::Running).then_some(())
                })
                .await;
                shutdown.work().cancel();
            }
            // Neither poll_next nor poll_close is called: nothing hands the claim to apalis.
            let r = wait_for(order, Duration::from_secs(5), || async {
                let r = store.get(&id).await.unwrap().unwrap();
                (r.state == TaskState::Queued).then_some(r)
            })
            .await;
            assert_eq!(r.attempt, 0, "{order}: given back as if never fetched");
        }
    }
}
