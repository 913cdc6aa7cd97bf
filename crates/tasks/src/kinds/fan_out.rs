//! `fan_out`: several HTTP requests at once inside one task: the seed chapter's
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
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use super::http_request::{HttpRequestPayload, cancelled, execute, millis};
use crate::{Failure, Invalid, Limits, TaskContext, TaskKind};

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

impl TaskKind for FanOut {
    type Payload = FanOutPayload;
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

    async fn run(ctx: TaskContext, p: FanOutPayload) -> Result<Value, Failure> {
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
        let report: Vec<Value> = p
            .requests
            .iter()
            .zip(outcomes)
            .map(|(r, (outcome, elapsed))| {
                let mut item = json!({
                    "method": Method::from(r.method).as_str(),
                    "url": r.url,
                });
                let (status, error) = match outcome {
                    Ok(ex) => {
                        item["elapsed_ms"] = json!(millis(ex.elapsed));
                        item["body_bytes"] = json!(ex.body.len());
                        (Some(ex.status.as_u16()), ex.status_failure())
                    }
                    Err(f) => {
                        item["elapsed_ms"] = json!(millis(elapsed));
                        (None, Some(f))
                    }
                };
                item["status"] = json!(status);
                item["ok"] = json!(error.is_none());
                match error {
                    None => succeeded += 1,
                    Some(f) => {
                        item["error"] =
                            json!({"kind": f.kind, "message": f.message, "retryable": f.retryable})
                    }
                }
                item
            })
            .collect();
        Ok(json!({
            "total_ms": total_ms,
            "concurrency": concurrency,
            "succeeded": succeeded,
            "failed": total - succeeded,
            "requests": report,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::testing::payload;

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
