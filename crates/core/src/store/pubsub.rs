//! Subscriptions with reconnect: wake-ups and cancels (workers), task events (API).

use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// Runs `on_message` for every message on `channel`, over a dedicated pub/sub connection
/// that reconnects with backoff until `stop` (which also ends a connect or subscribe in
/// flight). Spawn it on a `Shutdown` tracker so it is
/// joined on stop. `on_connect` runs after each (re)subscribe,
/// since messages published while disconnected are lost. `clients`: the one Redis, or a
/// cluster's nodes, tried in turn (a publish on any node of a cluster reaches subscribers
/// on every node, so any live node will do).
pub async fn subscription(
    clients: Vec<redis::Client>,
    channel: String,
    stop: CancellationToken,
    on_connect: impl Fn() + Send + 'static,
    on_message: impl Fn(String) + Send + 'static,
) {
    let mut backoff = Duration::from_millis(100);
    let mut turn = 0usize;
    while !stop.is_cancelled() {
        let Some(client) = clients.get(turn % clients.len().max(1)) else {
            tracing::error!(%channel, "no Redis to subscribe on");
            return;
        };
        turn += 1;
        // Connecting and subscribing end on `stop` too: an unreachable Redis can hold them
        // for the whole connect timeout, and the process's stop must not wait for that.
        let connected = tokio::select! {
            c = client.get_async_pubsub() => c,
            () = stop.cancelled() => return,
        };
        match connected {
            Ok(mut ps) => match tokio::select! {
                r = ps.subscribe(&channel) => r,
                () = stop.cancelled() => return,
            } {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    on_connect();
                    let mut messages = ps.on_message();
                    loop {
                        tokio::select! {
                            m = messages.next() => match m {
                                Some(m) => on_message(m.get_payload().unwrap_or_default()),
                                None => break,
                            },
                            _ = stop.cancelled() => return,
                        }
                    }
                    tracing::warn!(%channel, "subscription dropped; resubscribing");
                }
                Err(e) => tracing::warn!(%channel, error = %e, "cannot subscribe"),
            },
            Err(e) => tracing::warn!(%channel, error = %e, "cannot open pub/sub connection"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
