//! A start-up call retried while Redis is not ready (the layout migration, the worker's
//! kind registration): both binaries wait the same way, and a stop ends the wait.

use std::{fmt::Display, future::Future, time::Duration};

/// The first pause after a failed call; each next one doubles, up to [`LONGEST`].
const FIRST: Duration = Duration::from_millis(200);

/// The longest pause between two calls.
const LONGEST: Duration = Duration::from_secs(5);

/// Calls `attempt` until it succeeds, pausing between failures (each logged as `what`
/// failed), and gives up with `None` once `stop` resolves, which also ends a call in
/// flight: the calls this serves are atomic scripts, so one cut short is redone by the next
/// start.
pub async fn retry<T, E, F, Fut>(
    what: &str,
    stop: impl Future<Output = ()>,
    mut attempt: F,
) -> Option<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut stop = std::pin::pin!(stop);
    let mut pause = FIRST;
    loop {
        let done = tokio::select! {
            r = attempt() => r,
            () = &mut stop => return None,
        };
        let e = match done {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "{what} failed; trying again");
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = &mut stop => return None,
        }
        pause = (pause * 2).min(LONGEST);
    }
}
