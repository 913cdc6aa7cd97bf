//! `GET /metrics`: the api's Prometheus exposition (docs/observability.md lists every
//! metric).
//!
//! Two kinds of figures, so N replicas never double count:
//! - counters of what *this* process did (submits and cancels it handled, its HTTP requests,
//!   its Redis calls): Prometheus sums them over the replicas;
//! - gauges read from Redis at scrape time (tasks by state, oldest waiting age, live
//!   workers): every replica serves the same values, so queries take `max`, never `sum`.
//!
//! The exposition is `metrics-exporter-prometheus`'s; the recorder is process-global, so
//! several apps in one process (the tests) share it.

use std::{
    collections::HashMap,
    sync::{LazyLock, OnceLock, RwLock},
    time::Instant,
};

use ::metrics::{Counter, counter, gauge, histogram};
use actix_web::{
    HttpResponse,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    get,
    middleware::Next,
    web,
};
use chrono::Utc;
use errand_core::{prometheus, telemetry::redis_call};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::state::AppState;

pub(crate) const SUBMITTED: &str = "errand_kinds_submitted_total";
pub(crate) const CANCELLED: &str = "errand_kinds_cancelled_total";
const RECOVERED: &str = "errand_kinds_recovered_total";
const LEASED: &str = "errand_http_worker_leased_total";
const REPORTED: &str = "errand_http_worker_reports_total";
const HTTP_REQUESTS: &str = "errand_http_requests_total";
const HTTP_SECONDS: &str = "errand_http_request_duration_seconds";

/// Most distinct (queue, kind) pairs given series of their own; queue names come from
/// clients, so past this the queue label reads `_other` and the series count stays bounded.
const MAX_QUEUE_KINDS: usize = 500;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
/// Queues some live worker served at an earlier scrape.
static SLOT_QUEUES: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// The process's recorder (errand_core::prometheus), the api's metrics described the first
/// time; returns the handle that renders it (and that each app's upkeep drains, on its
/// [`Shutdown`](errand_core::shutdown::Shutdown)).
pub(crate) fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            // Another recorder already installed (an embedding process) keeps its place.
            let handle = prometheus::install().unwrap_or_else(|displaced| {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
                displaced.handle
            });
            describe();
            // Present from the start, so `increase()` sees the first recovery.
            counter!(RECOVERED).absolute(0);
            handle
        })
        .clone()
}

fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        SUBMITTED,
        "Tasks this api process created (repeats of an id excluded)."
    );
    describe_counter!(
        CANCELLED,
        "Tasks cancelled before they ran, by this api process (running ones are counted by the worker that stopped them)."
    );
    describe_counter!(
        RECOVERED,
        "Running tasks whose worker was lost (lease lapsed), re-queued by this api process's upkeep (workers count theirs under the same name)."
    );
    describe_counter!(
        LEASED,
        "Tasks HTTP workers leased through this api process (/v1/worker/lease)."
    );
    describe_counter!(
        REPORTED,
        "Attempt ends HTTP workers reported through this api process, by outcome (succeeded, failed, cancelled) and status (200 recorded, 409 stale claim, 422 refused)."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template and status."
    );
    describe_histogram!(
        HTTP_SECONDS,
        Unit::Seconds,
        "HTTP request latency by route template."
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
    describe_gauge!(
        "errand_queue_tasks",
        "Tasks by queue and state, read from Redis at scrape time."
    );
    describe_gauge!(
        "errand_queue_oldest_waiting_seconds",
        Unit::Seconds,
        "Age of the task that has waited longest in `queued`, read from Redis (0 when none waits)."
    );
    describe_gauge!(
        "errand_queue_ready_entries",
        "Entries in the queue's ready list, read from Redis."
    );
    describe_gauge!(
        "errand_queue_paused",
        "1 while the queue is paused (its workers take none of its tasks), else 0."
    );
    describe_gauge!(
        "errand_workers_live",
        "Worker processes with a live heartbeat."
    );
    describe_gauge!(
        "errand_workers_slots",
        "Concurrency of the live workers, summed per queue."
    );
    describe_gauge!(
        "errand_workers_busy_slots",
        "Tasks the live workers report running."
    );
    describe_gauge!(
        "errand_redis_up",
        "1 when the last scrape could read Redis, else 0."
    );
}

/// Cached counter handles per (queue, kind), so a submit costs a map read, not a registry
/// lookup with label allocation.
struct QueueKindCounters {
    name: &'static str,
    map: RwLock<HashMap<(String, String), Counter>>,
}

impl QueueKindCounters {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            map: RwLock::new(HashMap::new()),
        }
    }

    fn increment(&self, queue: &str, kind: &str) {
        if let Some(c) = self
            .map
            .read()
            .ok()
            .and_then(|m| m.get(&(queue.to_owned(), kind.to_owned())).cloned())
        {
            c.increment(1);
            return;
        }
        let Ok(mut m) = self.map.write() else { return };
        let queue = if m.len() >= MAX_QUEUE_KINDS {
            "_other"
        } else {
            queue
        };
        let key = (queue.to_owned(), kind.to_owned());
        let c = m
            .entry(key.clone())
            .or_insert_with(|| counter!(self.name, "queue" => key.0, "kind" => key.1))
            .clone();
        c.increment(1);
    }
}

static SUBMITS: LazyLock<QueueKindCounters> = LazyLock::new(|| QueueKindCounters::new(SUBMITTED));
static CANCELS: LazyLock<QueueKindCounters> = LazyLock::new(|| QueueKindCounters::new(CANCELLED));

/// A task this process created.
pub(crate) fn submitted(queue: &str, kind: &str) {
    SUBMITS.increment(queue, kind);
}

/// Lapsed leases this process's upkeep re-queued.
pub(crate) fn recovered(n: u64) {
    counter!(RECOVERED).increment(n);
}

/// Tasks an HTTP worker leased.
pub(crate) fn leased(n: usize) {
    if n > 0 {
        counter!(LEASED).increment(n as u64);
    }
}

/// A report of an HTTP worker, with what became of it.
pub(crate) fn reported(outcome: &'static str, status: u16) {
    counter!(REPORTED, "outcome" => outcome, "status" => status.to_string()).increment(1);
}

/// A task this process cancelled before it ran.
pub(crate) fn cancelled(queue: &str, kind: &str) {
    CANCELS.increment(queue, kind);
}

/// Counts and times every request by its route template (`/v1/tasks/{id}`, never the id):
/// an unmatched path is `unmatched`, so a scan of random URLs adds no series.
pub(crate) async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let res = next.call(req).await;
    let status = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let elapsed = started.elapsed().as_secs_f64();
    histogram!(HTTP_SECONDS, "method" => method, "route" => route.clone()).record(elapsed);
    counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status.to_string())
        .increment(1);
    res
}

fn method_label(m: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The Prometheus exposition: this process's counters and histograms, and the queue and
/// worker gauges read from Redis now. Redis down still answers 200 with
/// `errand_redis_up 0`, so the scrape itself does not fail with the thing it reports.
#[get("/metrics")]
pub(crate) async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    let handle = install();
    let store = &state.store;
    let queues = redis_call("queues", store.queues(Utc::now())).await;
    let workers = redis_call("workers", store.workers()).await;
    let up = queues.is_ok() && workers.is_ok();
    gauge!("errand_redis_up").set(if up { 1.0 } else { 0.0 });
    if let Ok(queues) = queues {
        let names: Vec<String> = queues.iter().map(|q| q.name.clone()).collect();
        if let Ok(paused) = redis_call("paused", store.paused(&names)).await {
            for (name, at) in names.iter().zip(paused) {
                gauge!("errand_queue_paused", "queue" => name.clone()).set(if at.is_some() {
                    1.0
                } else {
                    0.0
                });
            }
        }
        for q in queues {
            for (s, n) in &q.counts {
                gauge!("errand_queue_tasks", "queue" => q.name.clone(), "state" => s.as_str())
                    .set(*n as f64);
            }
            gauge!("errand_queue_oldest_waiting_seconds", "queue" => q.name.clone())
                .set(q.oldest_queued_ms.unwrap_or(0) as f64 / 1000.0);
            gauge!("errand_queue_ready_entries", "queue" => q.name).set(q.active_jobs as f64);
        }
    }
    if let Ok(workers) = workers {
        let live: Vec<_> = workers.iter().filter(|w| !w.stopping).collect();
        gauge!("errand_workers_live").set(live.len() as f64);
        gauge!("errand_workers_busy_slots")
            .set(live.iter().map(|w| w.running).sum::<usize>() as f64);
        let mut slots: HashMap<String, usize> = HashMap::new();
        for w in &live {
            for q in &w.queues {
                *slots.entry(q.name.clone()).or_default() += q.concurrency;
            }
        }
        // A queue whose last worker left reads 0, not its last value.
        if let Ok(mut seen) = SLOT_QUEUES.lock() {
            for q in seen.iter() {
                slots.entry(q.clone()).or_default();
            }
            seen.extend(slots.keys().cloned());
        }
        for (q, n) in slots {
            gauge!("errand_workers_slots", "queue" => q).set(n as f64);
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}
