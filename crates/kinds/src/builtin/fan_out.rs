//! `fan_out`: several HTTP requests at once inside one task: the tutorial chapter's
//! `asyncio.gather`, in a worker. The requests run concurrently on the worker's executor
//! (`join_all`, at most `concurrency` in flight), so the task takes about as long as the
//! slowest request, not the sum. Progress is requests finished / total.
//!
//! The result reports every request (status or error, and its time) and the wall time of the
//! whole fan-out. A request that fails does not fail the task: re-running the task would
//! send the requests that succeeded again. The one exception is when no request could even
//! connect: nothing was sent, so that attempt fails retryably.
//!
//! **Not idempotent**, like `http_request`: a retry after a lost worker sends every request
//! again.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use super::http_request::{HttpRequestPayload, cancelled, document_request, execute, millis};
use crate::{Failure, Invalid, Limits, TaskContext, TaskKind};

/// The `fan_out` kind's [`TaskKind`] impl; the catalog registers it.
#[derive(Debug)]
pub struct FanOut;

/// Payload of the `fan_out` kind.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FanOutPayload {
    /// The requests, each shaped like an `http_request` payload; at most
    /// `tasks.fan_out_max_requests`.
    #[schema(inline)]
    pub requests: Vec<HttpRequestPayload>,
    /// Most requests in flight at once; default and upper bound
    /// `tasks.fan_out_max_concurrency`.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub concurrency: Option<usize>,
}

/// Result of the `fan_out` kind: every request's outcome, in payload order.
#[derive(Debug, Serialize, ToSchema)]
pub struct FanOutResult {
    /// Wall time of the whole fan-out.
    pub total_ms: u64,
    /// Most requests allowed in flight at once: the payload's `concurrency`, or
    /// `tasks.fan_out_max_concurrency` when it gave none.
    pub concurrency: usize,
    /// Requests answered below 400.
    pub succeeded: usize,
    /// Requests not `ok`: answered 400 or above, or not answered at all.
    pub failed: usize,
    /// One outcome per request, in payload order.
    #[schema(inline)]
    pub requests: Vec<FanOutOutcome>,
}

/// What became of one request of a `fan_out`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FanOutOutcome {
    /// The method sent, upper case.
    #[schema(example = "GET")]
    pub method: String,
    /// The URL as the payload gave it.
    pub url: String,
    /// The answer's status; null when there was none (connect error, timeout).
    #[schema(required = true, minimum = 100, maximum = 599)]
    pub status: Option<u16>,
    /// True when it was answered below 400.
    pub ok: bool,
    /// Milliseconds the request took, from its turn to go out (a free concurrency slot)
    /// to its answer or failure.
    pub elapsed_ms: u64,
    /// Bytes of body read (at most `tasks.http_max_response_bytes`), when answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub body_bytes: Option<usize>,
    /// Why it is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, inline)]
    pub error: Option<FanOutError>,
}

/// A failed request of a `fan_out`: the failure an `http_request` would have had.
#[derive(Debug, Serialize, ToSchema)]
pub struct FanOutError {
    /// A machine-readable category: `http_status`, `connect`, `timeout`,
    /// `destination_denied`…, the `error.kind` an `http_request` would have ended with.
    #[schema(example = "http_status")]
    pub kind: String,
    /// What happened, for people (for `http_status`, the status and the body's start).
    pub message: String,
    /// Whether an `http_request` would have retried it (5xx, 408, 429, connect errors,
    /// timeouts); informational, since `fan_out` does not retry single requests.
    pub retryable: bool,
}

impl TaskKind for FanOut {
    type Payload = FanOutPayload;
    type Output = FanOutResult;
    const NAME: &'static str = "fan_out";
    const SUMMARY: &'static str = "Several HTTP requests run concurrently in one task (gather); reports each status and the total time. Not idempotent.";
    const IDEMPOTENT: bool = false;

    fn example() -> Value {
        json!({
            "requests": [
                {"url": "https://example.com/a"},
                {"url": "https://example.com/b", "timeout_secs": 5},
                {"method": "POST", "url": "https://example.com/c", "body": {"x": 1}}
            ],
            "concurrency": 3
        })
    }

    fn check(p: &FanOutPayload, limits: &Limits) -> Result<(), Invalid> {
        if p.requests.is_empty() || p.requests.len() > limits.fan_out_max_requests {
            return Err(Invalid::new(
                "payload.requests",
                format!(
                    "must hold 1 to {} requests (tasks.fan_out_max_requests)",
                    limits.fan_out_max_requests
                ),
            ));
        }
        for (i, r) in p.requests.iter().enumerate() {
            r.check_at(limits, &format!("payload.requests[{i}]"))?;
        }
        if let Some(c) = p.concurrency
            && (c == 0 || c > limits.fan_out_max_concurrency)
        {
            return Err(Invalid::new(
                "payload.concurrency",
                format!(
                    "must be between 1 and {} (tasks.fan_out_max_concurrency)",
                    limits.fan_out_max_concurrency
                ),
            ));
        }
        Ok(())
    }

    fn document(schema: &mut Value, limits: &Limits) {
        let requests = &mut schema["properties"]["requests"];
        requests["minItems"] = json!(1);
        requests["maxItems"] = json!(limits.fan_out_max_requests);
        document_request(&mut requests["items"], limits);
        schema["properties"]["concurrency"]["maximum"] = json!(limits.fan_out_max_concurrency);
    }

    async fn run(ctx: TaskContext, p: FanOutPayload) -> Result<FanOutResult, Failure> {
        let services = ctx.services();
        let client = services.http()?;
        let limits = &services.limits;
        let concurrency = p
            .concurrency
            .unwrap_or(limits.fan_out_max_concurrency)
            .clamp(1, limits.fan_out_max_concurrency);
        let total = p.requests.len();
        let slots = Semaphore::new(concurrency);
        let finished = AtomicUsize::new(0);
        ctx.report(0, format!("0 of {total} requests done"));

        let started = Instant::now();
        let calls = p.requests.iter().map(|r| async {
            let _slot = slots
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let t = Instant::now();
            let outcome = execute(client, r, limits).await;
            let elapsed = t.elapsed();
            let n = finished.fetch_add(1, Ordering::Relaxed) + 1;
            ctx.report(
                (n * 100 / total) as u8,
                format!("{n} of {total} requests done"),
            );
            (outcome, elapsed)
        });
        let outcomes = tokio::select! {
            o = futures::future::join_all(calls) => o,
            _ = ctx.cancelled() => return Err(cancelled()),
        };
        let total_ms = millis(started.elapsed());

        if outcomes
            .iter()
            .all(|(o, _)| matches!(o, Err(f) if f.kind == "connect"))
        {
            let first = outcomes
                .first()
                .and_then(|(o, _)| o.as_ref().err())
                .map(|f| f.message.clone())
                .unwrap_or_default();
            return Err(Failure::retryable(
                "connect",
                format!(
                    "none of the {total} requests could connect (nothing was sent); first: {first}"
                ),
            ));
        }

        let mut succeeded = 0;
        let requests = p
            .requests
            .iter()
            .zip(outcomes)
            .map(|(r, (outcome, elapsed))| {
                let (status, error, elapsed, body_bytes) = match outcome {
                    Ok(ex) => (
                        Some(ex.status.as_u16()),
                        ex.status_failure(),
                        ex.elapsed,
                        Some(ex.body.len()),
                    ),
                    Err(f) => (None, Some(f), elapsed, None),
                };
                if error.is_none() {
                    succeeded += 1;
                }
                FanOutOutcome {
                    method: Method::from(r.method).as_str().to_owned(),
                    url: r.url.clone(),
                    status,
                    ok: error.is_none(),
                    elapsed_ms: millis(elapsed),
                    body_bytes,
                    error: error.map(|f| FanOutError {
                        kind: f.kind,
                        message: f.message,
                        retryable: f.retryable,
                    }),
                }
            })
            .collect();
        Ok(FanOutResult {
            total_ms,
            concurrency,
            succeeded,
            failed: total - succeeded,
            requests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::testing::payload;

    fn check(v: Value) -> Result<(), Invalid> {
        FanOut::check(&payload::<FanOut>(v)?, &Limits::default())
    }

    #[test]
    fn validation_names_the_request_and_field() {
        assert!(check(FanOut::example()).is_ok());
        let e =
            check(json!({"requests": [{"url": "http://a"}, {"url": "gopher://b"}]})).unwrap_err();
        assert_eq!(e.field, "payload.requests[1].url");
        let e =
            check(json!({"requests": [{"url": "http://a", "timeout_secs": 1000}]})).unwrap_err();
        assert_eq!(e.field, "payload.requests[0].timeout_secs");
        let e = check(json!({"requests": [{"url": "http://a"}, {"uri": "http://b"}]})).unwrap_err();
        assert_eq!(e.field, "payload.requests[1].uri");
        assert_eq!(
            check(json!({"requests": []})).unwrap_err().field,
            "payload.requests"
        );
        let many: Vec<Value> = (0..101).map(|_| json!({"url": "http://a"})).collect();
        assert_eq!(
            check(json!({"requests": many})).unwrap_err().field,
            "payload.requests"
        );
        assert_eq!(
            check(json!({"requests": [{"url": "http://a"}], "concurrency": 0}))
                .unwrap_err()
                .field,
            "payload.concurrency"
        );
        assert_eq!(
            check(json!({"requests": [{"url": "http://a"}], "concurrency": 17}))
                .unwrap_err()
                .field,
            "payload.concurrency"
        );
    }
}
