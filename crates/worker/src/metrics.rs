//! The worker's Prometheus metrics, served on `worker.metrics_addr` (off when unset: no
//! recorder is installed and every handle below is a no-op).
//!
//! A worker counts only what it did itself (the attempts it started and finished, the
//! lapsed leases its upkeep recovered, the schedule ticks it fired), so summing over every
//! worker and api process counts each event once. Queue-wide figures read from Redis are the
//! api's (`GET /metrics` there). docs/observability.md lists every metric.
//!
//! Handles are resolved once per (queue, kind) and kept: an attempt costs a map read and a
//! few atomic adds, not a registry lookup with label strings.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, LazyLock, Once, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use errand_core::{prometheus, shutdown::Shutdown, store::Outcome};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, TcpStream};

/// The exposition's content type: Prometheus text format 0.0.4.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4";

/// The worker's metrics described once per process: every worker started in the process
/// serves the one recorder on its own listener.
static DESCRIBED: Once = Once::new();

#[derive(Debug, thiserror::Error)]
pub(crate) enum MetricsError {
    #[error("worker.metrics_addr `{0}` is not host:port with an IP address")]
    Addr(String),
    #[error("worker.metrics_addr {addr}: cannot serve metrics: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install the metrics recorder: {0}")]
    Recorder(#[from] prometheus::Displaced),
}

/// Binds `addr` (port 0 picks a free one, logged as bound), installs the recorder (once per
/// process; several workers in one test process share it) and serves `GET /metrics` on
/// `shutdown`'s background tracker, so the listener is joined with the worker's other loops.
pub(crate) async fn install(addr: &str, shutdown: &Shutdown) -> Result<(), MetricsError> {
    let addr: SocketAddr = addr.parse().map_err(|_| MetricsError::Addr(addr.into()))?;
    let cannot = |source| MetricsError::Listen { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(cannot)?;
    let bound = listener.local_addr().map_err(cannot)?;
    let handle = recorder()?;
    shutdown.spawn_background(prometheus::upkeep(handle.clone(), shutdown.background()));
    shutdown.spawn_background(listen(listener, handle, shutdown.clone()));
    tracing::info!(addr = %bound, "serving metrics at /metrics");
    Ok(())
}

/// The process's recorder (errand_core::prometheus), this worker's metrics described the
/// first time.
fn recorder() -> Result<PrometheusHandle, MetricsError> {
    let handle = prometheus::install()?;
    DESCRIBED.call_once(|| {
        describe();
        // Present from the start at 0, so `rate()` and `increase()` see the first event.
        counter!("errand_kinds_recovered_total").absolute(0);
        counter!("errand_schedules_fired_total").absolute(0);
    });
    Ok(handle)
}

/// Accepts scrapes until [`Shutdown::background`]; each
/// connection is a background task of its own, closed gracefully (an idle keep-alive at
/// once) on the same token.
async fn listen(listener: TcpListener, handle: PrometheusHandle, shutdown: Shutdown) {
    let stop = shutdown.background();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shutdown.spawn_background(connection(stream, handle.clone(), stop.clone()));
                }
                Err(e) => {
                    // Out of descriptors, most likely: give them a moment to come back.
                    tracing::warn!(error = %e, "cannot accept a metrics connection");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            },
        }
    }
}

async fn connection(
    stream: TcpStream,
    handle: PrometheusHandle,
    stop: tokio_util::sync::CancellationToken,
) {
    let service = service_fn(move |req| respond(req, handle.clone()));
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let served = tokio::select! {
        r = conn.as_mut() => r,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "metrics connection ended with an error");
    }
}

/// `GET /metrics`: the exposition; any other path 404, another method 405.
async fn respond(
    req: Request<Incoming>,
    handle: PrometheusHandle,
) -> Result<Response<String>, Infallible> {
    let mut res = Response::new(String::new());
    if req.uri().path() != "/metrics" {
        *res.status_mut() = StatusCode::NOT_FOUND;
        return Ok(res);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        res.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(res);
    }
    // Rendering walks every series: off the runtime's worker threads, as the exporter did.
    let body = match tokio::task::spawn_blocking(move || handle.render()).await {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "rendering the metrics failed");
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(res);
        }
    };
    *res.body_mut() = body;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
    Ok(res)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "errand_kinds_started_total",
        "Attempts this worker started."
    );
    describe_counter!(
        "errand_kinds_succeeded_total",
        "Tasks this worker finished successfully."
    );
    describe_counter!(
        "errand_kinds_failed_total",
        "Tasks this worker failed for good (no attempt left, or not retryable)."
    );
    describe_counter!(
        "errand_kinds_retried_total",
        "Attempts this worker failed that will be retried after a backoff."
    );
    describe_counter!(
        "errand_kinds_cancelled_total",
        "Running tasks this worker stopped on a cancel request."
    );
    describe_histogram!(
        "errand_task_run_duration_seconds",
        Unit::Seconds,
        "Time an attempt ran, by outcome."
    );
    describe_histogram!(
        "errand_task_queue_wait_seconds",
        Unit::Seconds,
        "Time a task waited in `queued` before this attempt started."
    );
    describe_counter!(
        "errand_kinds_recovered_total",
        "Running tasks whose worker was lost (lease lapsed), re-queued by this worker's upkeep."
    );
    describe_counter!(
        "errand_schedules_fired_total",
        "Schedule ticks this worker fired."
    );
    describe_gauge!(
        "errand_worker_slots",
        "This worker's concurrency per served queue."
    );
    describe_gauge!(
        "errand_worker_busy_slots",
        "Attempts this worker is running per queue."
    );
    describe_histogram!(
        errand_core::telemetry::REDIS_SECONDS,
        Unit::Seconds,
        "Redis call latency by operation."
    );
    describe_counter!(
        errand_core::telemetry::REDIS_ERRORS,
        "Redis calls that failed, by operation."
    );
}

/// The handles of one (queue, kind).
pub(crate) struct TaskMetrics {
    started: Counter,
    succeeded: Counter,
    failed: Counter,
    retried: Counter,
    cancelled: Counter,
    run: [Histogram; 4],
    wait: Histogram,
}

const OUTCOMES: [&str; 4] = ["succeeded", "failed", "retried", "cancelled"];

fn outcome_index(o: &Outcome) -> usize {
    match o {
        Outcome::Succeeded(_) => 0,
        Outcome::Failed(_) => 1,
        Outcome::Retry { .. } => 2,
        Outcome::Cancelled(_) => 3,
    }
}

impl TaskMetrics {
    fn new(queue: &str, kind: &str) -> Self {
        let (q, k) = (queue.to_owned(), kind.to_owned());
        let c = |name: &'static str| counter!(name, "queue" => q.clone(), "kind" => k.clone());
        Self {
            started: c("errand_kinds_started_total"),
            succeeded: c("errand_kinds_succeeded_total"),
            failed: c("errand_kinds_failed_total"),
            retried: c("errand_kinds_retried_total"),
            cancelled: c("errand_kinds_cancelled_total"),
            run: OUTCOMES.map(|o| {
                histogram!("errand_task_run_duration_seconds", "queue" => q.clone(), "kind" => k.clone(), "outcome" => o)
            }),
            wait: histogram!("errand_task_queue_wait_seconds", "queue" => q.clone(), "kind" => k.clone()),
        }
    }

    /// An attempt started now; `queued_at` is when its task entered the queue.
    pub(crate) fn started(&self, queued_at: Option<DateTime<Utc>>) {
        self.started.increment(1);
        if let Some(at) = queued_at {
            let waited = (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0;
            self.wait.record(waited);
        }
    }

    /// The attempt's work ended after `ran` with `outcome` (recorded or not).
    pub(crate) fn ran(&self, outcome: &Outcome, ran: Duration) {
        self.run[outcome_index(outcome)].record(ran.as_secs_f64());
    }

    /// The outcome is on the record: the task's state changed because of this worker.
    pub(crate) fn recorded(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Succeeded(_) => &self.succeeded,
            Outcome::Failed(_) => &self.failed,
            Outcome::Retry { .. } => &self.retried,
            Outcome::Cancelled(_) => &self.cancelled,
        }
        .increment(1);
    }
}

type Key = (String, String);
static TASKS: LazyLock<RwLock<HashMap<Key, Arc<TaskMetrics>>>> = LazyLock::new(Default::default);

/// The handles of `queue` and `kind` (kinds come from the catalog and queues from the
/// worker's configuration, so the set is bounded).
pub(crate) fn task(queue: &str, kind: &str) -> Arc<TaskMetrics> {
    let key = (queue.to_owned(), kind.to_owned());
    if let Some(m) = TASKS.read().ok().and_then(|m| m.get(&key).cloned()) {
        return m;
    }
    let m = Arc::new(TaskMetrics::new(queue, kind));
    match TASKS.write() {
        Ok(mut map) => map.entry(key).or_insert(m).clone(),
        Err(_) => m,
    }
}

/// Per-queue slot gauges of this process.
pub(crate) struct Slots {
    busy: Gauge,
}

static SLOTS: LazyLock<RwLock<HashMap<String, Arc<Slots>>>> = LazyLock::new(Default::default);

/// Says this process serves `queue` with `concurrency` slots.
pub(crate) fn serve(queue: &str, concurrency: usize) {
    gauge!("errand_worker_slots", "queue" => queue.to_owned()).set(concurrency as f64);
    slots(queue);
}

fn slots(queue: &str) -> Arc<Slots> {
    if let Some(s) = SLOTS.read().ok().and_then(|m| m.get(queue).cloned()) {
        return s;
    }
    let s = Arc::new(Slots {
        busy: gauge!("errand_worker_busy_slots", "queue" => queue.to_owned()),
    });
    match SLOTS.write() {
        Ok(mut m) => m.entry(queue.to_owned()).or_insert(s).clone(),
        Err(_) => s,
    }
}

/// Holds one busy slot of `queue` while alive.
pub(crate) struct Busy(Arc<Slots>);

pub(crate) fn busy(queue: &str) -> Busy {
    let s = slots(queue);
    s.busy.increment(1.0);
    Busy(s)
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.decrement(1.0);
    }
}

/// Running tasks of lost workers this process's upkeep put back in their queue.
pub(crate) fn recovered(n: usize) {
    counter!("errand_kinds_recovered_total").increment(n as u64);
}

/// Schedule ticks this process fired.
pub(crate) fn schedules_fired(n: usize) {
    counter!("errand_schedules_fired_total").increment(n as u64);
}
