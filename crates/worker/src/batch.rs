//! Group commit for the two store calls every task makes (claim and finish). Concurrent
//! calls queue here while one batch is in flight, then go to Redis together as ONE script
//! call. At idle a call goes out alone at once, so latency is unchanged; under load the
//! per-call cost of a Lua script (argument setup, reply, round trip) is paid once per batch
//! instead of once per task, which is what bounded drain throughput (docs/performance.md).

use std::sync::Arc;

use errand_core::{StoreError, shutdown::Shutdown};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

/// Most requests in one batch (bounds script run time, so Redis stays responsive).
const MAX_BATCH: usize = 256;

type Reply<R> = oneshot::Sender<Result<R, StoreError>>;
type Flush<Q, R> =
    Arc<dyn Fn(Vec<Q>) -> BoxFuture<'static, Result<Vec<R>, StoreError>> + Send + Sync>;

pub(crate) struct Coalescer<Q, R> {
    tx: mpsc::UnboundedSender<(Q, Reply<R>)>,
}

impl<Q: Send + 'static, R: Send + 'static> Coalescer<Q, R> {
    /// Starts the batching task on `shutdown`'s background loops; `flush` answers a batch in
    /// order. The task ends once every handle to the coalescer is dropped.
    pub(crate) fn start(
        shutdown: &Shutdown,
        flush: impl Fn(Vec<Q>) -> BoxFuture<'static, Result<Vec<R>, StoreError>> + Send + Sync + 'static,
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Q, Reply<R>)>();
        let flush: Flush<Q, R> = Arc::new(flush);
        shutdown.spawn_background(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (reqs, replies): (Vec<Q>, Vec<Reply<R>>) = batch.into_iter().unzip();
                let n = reqs.len();
                match flush(reqs).await {
                    Ok(answers) if answers.len() == n => {
                        for (reply, a) in replies.into_iter().zip(answers) {
                            let _ = reply.send(Ok(a));
                        }
                    }
                    Ok(answers) => {
                        let e = StoreError::Protocol(format!(
                            "batch answered {} of {n}",
                            answers.len()
                        ));
                        for reply in replies {
                            let _ = reply.send(Err(e.duplicate()));
                        }
                    }
                    Err(e) => {
                        for reply in replies {
                            let _ = reply.send(Err(e.duplicate()));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    pub(crate) async fn call(&self, q: Q) -> Result<R, StoreError> {
        self.send(q).await
    }

    /// Queues `q` for the next batch at once; its answer arrives on the returned future,
    /// which the caller may also drop.
    pub(crate) fn send(&self, q: Q) -> Pending<R> {
        let (reply, rx) = oneshot::channel();
        let queued = self.tx.send((q, reply)).is_ok();
        Pending { rx, queued }
    }
}

/// The answer to a call queued with [`Coalescer::send`].
pub(crate) struct Pending<R> {
    rx: oneshot::Receiver<Result<R, StoreError>>,
    queued: bool,
}

impl<R> Future for Pending<R> {
    type Output = Result<R, StoreError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if !self.queued {
            return std::task::Poll::Ready(Err(StoreError::Protocol(
                "batching task stopped".into(),
            )));
        }
        std::pin::Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.map_err(|_| StoreError::Protocol("batching task dropped a call".into()))?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_get_their_own_answers() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let f = flushes.clone();
        let shutdown = Shutdown::new(std::time::Duration::from_secs(1));
        let c = Arc::new(Coalescer::start(&shutdown, move |qs: Vec<u32>| {
            f.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(qs.into_iter().map(|q| q * 2).collect())
            }
            .boxed()
        }));
        let calls = (0..100u32).map(|i| {
            let c = c.clone();
            async move { (i, c.call(i).await.unwrap()) }
        });
        for (i, r) in futures::future::join_all(calls).await {
            assert_eq!(r, i * 2);
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!(n < 10, "100 concurrent calls took {n} flushes");
    }
}
