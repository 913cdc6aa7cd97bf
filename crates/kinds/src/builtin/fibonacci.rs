//! `fibonacci`: fib(n) exactly, with big integers, iteratively (n additions), on tokio's
//! blocking pool: the tutorial chapter's other CPU-bound example. fib(0) = 0, fib(1) = 1.
//!
//! The result always has `n` and `digits` (the count of decimal digits). Up to
//! [`FULL_DIGITS`] digits it carries the whole number as a decimal string in `value`;
//! beyond that, `first_digits` and `last_digits` (each [`EDGE_DIGITS`] long) instead, so a
//! large n does not put tens of kilobytes into the record. Idempotent: a pure function.

use num_bigint::BigUint;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::{Failure, Invalid, Limits, TaskContext, TaskKind};

/// The `fibonacci` kind's [`TaskKind`] impl; the catalog registers it.
#[derive(Debug)]
pub struct Fibonacci;

/// Numbers up to this many digits are returned whole.
pub const FULL_DIGITS: usize = 1_000;
/// Digits kept from each end of a longer number.
pub const EDGE_DIGITS: usize = 50;
/// Additions between two looks at the cancellation token and two progress reports.
const STEPS_PER_CHECK: u64 = 1_000;

/// Payload of the `fibonacci` kind.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FibonacciPayload {
    /// Which Fibonacci number, at most `tasks.fibonacci_max_n`.
    #[schema(minimum = 0, example = 100)]
    pub n: u64,
}

/// Result of the `fibonacci` kind: `value` up to 1000 digits, else `first_digits` and
/// `last_digits` (50 each).
#[derive(Debug, Serialize, ToSchema)]
pub struct FibonacciResult {
    /// The payload's `n`: which number this is.
    pub n: u64,
    /// How many decimal digits fib(n) has.
    pub digits: usize,
    /// fib(n) in decimal, when it has at most 1000 digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        nullable = false,
        pattern = "^[0-9]{1,1000}$",
        example = "354224848179261915075"
    )]
    pub value: Option<String>,
    /// The first 50 digits, when there are more than 1000.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, pattern = "^[0-9]{50}$")]
    pub first_digits: Option<String>,
    /// The last 50 digits, when there are more than 1000.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, pattern = "^[0-9]{50}$")]
    pub last_digits: Option<String>,
}

impl TaskKind for Fibonacci {
    type Payload = FibonacciPayload;
    type Output = FibonacciResult;
    const NAME: &'static str = "fibonacci";
    const SUMMARY: &'static str =
        "fib(n) exactly (big integers, iterative); CPU-bound, runs on the blocking pool.";
    const IDEMPOTENT: bool = true;

    fn example() -> Value {
        json!({"n": 100})
    }

    fn check(p: &FibonacciPayload, limits: &Limits) -> Result<(), Invalid> {
        if p.n > limits.fibonacci_max_n {
            return Err(Invalid::new(
                "payload.n",
                format!(
                    "must be at most {} (tasks.fibonacci_max_n)",
                    limits.fibonacci_max_n
                ),
            ));
        }
        Ok(())
    }

    fn document(schema: &mut Value, limits: &Limits) {
        schema["properties"]["n"]["maximum"] = json!(limits.fibonacci_max_n);
    }

    async fn run(ctx: TaskContext, p: FibonacciPayload) -> Result<FibonacciResult, Failure> {
        let n = p.n;
        let worker_ctx = ctx.clone();
        tokio::task::spawn_blocking(move || {
            let f = fib(&worker_ctx, n)?;
            Ok(describe(n, &f.to_string()))
        })
        .await
        .map_err(|e| Failure::retryable("panic", format!("fibonacci thread failed: {e}")))?
    }
}

/// Runs on a blocking-pool thread. Returns early once the task is cancelled.
fn fib(ctx: &TaskContext, n: u64) -> Result<BigUint, Failure> {
    // (a, b) = (fib(i), fib(i + 1)); adding in place keeps it to two allocations that grow.
    let mut a = BigUint::ZERO;
    let mut b = BigUint::from(1u32);
    for i in 0..n {
        if i % STEPS_PER_CHECK == 0 && i > 0 {
            if ctx.is_cancelled() {
                return Err(Failure::permanent("cancelled", "fibonacci was cancelled"));
            }
            ctx.report((i * 100 / n) as u8, format!("{i} of {n} steps"));
        }
        a += &b;
        std::mem::swap(&mut a, &mut b);
    }
    ctx.report(100, format!("{n} of {n} steps"));
    Ok(a)
}

fn describe(n: u64, decimal: &str) -> FibonacciResult {
    let digits = decimal.len();
    let (value, first_digits, last_digits) = if digits <= FULL_DIGITS {
        (Some(decimal.to_owned()), None, None)
    } else {
        (
            None,
            Some(decimal[..EDGE_DIGITS].to_owned()),
            Some(decimal[digits - EDGE_DIGITS..].to_owned()),
        )
    };
    FibonacciResult {
        n,
        digits,
        value,
        first_digits,
        last_digits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::testing::{context, payload};

    async fn run(n: u64) -> Value {
        let (ctx, _progress, _cancel) = context();
        serde_json::to_value(Fibonacci::run(ctx, FibonacciPayload { n }).await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn known_values() {
        assert_eq!(run(0).await["value"], "0");
        assert_eq!(run(1).await["value"], "1");
        assert_eq!(run(2).await["value"], "1");
        assert_eq!(run(10).await, json!({"n": 10, "digits": 2, "value": "55"}));
        assert_eq!(run(93).await["value"], "12200160415121876738");
        assert_eq!(
            run(100).await,
            json!({"n": 100, "digits": 21, "value": "354224848179261915075"})
        );
    }

    /// fib(100000) has 20,899 digits: beyond FULL_DIGITS, so only its ends are returned.
    #[tokio::test]
    async fn long_numbers_give_digit_count_and_both_ends() {
        let (ctx, progress, _cancel) = context();
        let r = Fibonacci::run(ctx, FibonacciPayload { n: 100_000 })
            .await
            .unwrap();
        let r = serde_json::to_value(r).unwrap();
        assert_eq!(r["digits"], 20_899);
        assert!(r.get("value").is_none(), "{r}");
        // From Python's big integers.
        assert_eq!(
            r["first_digits"],
            "25974069347221724166155034021275915414880485386517"
        );
        assert_eq!(
            r["last_digits"],
            "74355609970015699780289236362349895374653428746875"
        );
        assert_eq!(progress.borrow().as_ref().unwrap().percent, 100);
    }

    #[test]
    fn n_is_bounded_by_config() {
        let limits = Limits {
            fibonacci_max_n: 500,
            ..Limits::default()
        };
        let e = Fibonacci::check(&FibonacciPayload { n: 501 }, &limits).unwrap_err();
        assert_eq!(e.field, "payload.n");
        assert!(Fibonacci::check(&FibonacciPayload { n: 500 }, &limits).is_ok());
        assert_eq!(
            payload::<Fibonacci>(json!({"n": -1})).unwrap_err().field,
            "payload.n"
        );
        assert_eq!(
            payload::<Fibonacci>(json!({"n": 5, "m": 1}))
                .unwrap_err()
                .field,
            "payload.m"
        );
    }

    #[tokio::test]
    async fn cancellation_stops_the_loop() {
        let (ctx, _progress, cancel) = context();
        cancel.cancel();
        let e = Fibonacci::run(ctx, FibonacciPayload { n: 100_000 })
            .await
            .unwrap_err();
        assert_eq!(e.kind, "cancelled");
    }
}
