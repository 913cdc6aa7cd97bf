//! The process's Prometheus recorder, one for the api and the worker alike: its install, the
//! histogram buckets every `_seconds` metric has, and the upkeep that drains histogram
//! samples.

use std::{sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Latency buckets (seconds) for every `_seconds` histogram: 1 ms to 10 min, because task
/// run times and queue waits span that range while HTTP and Redis sit at the low end.
pub const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 600.0,
];

/// How often the recorder's upkeep runs: the exporter's own listener runs it this often
/// (its default `upkeep_timeout`), and without it histogram samples pile up between scrapes.
pub const UPKEEP: Duration = Duration::from_secs(5);

/// The recorder's handle, and whether the recorder got the global place.
static INSTALLED: OnceLock<(PrometheusHandle, bool)> = OnceLock::new();

/// Another recorder held the metrics facade's one global place first (an embedding
/// process's): errand's recorder records nothing, and its handle renders it empty.
#[derive(Debug, thiserror::Error)]
#[error("another metrics recorder was installed first")]
pub struct Displaced {
    /// Renders errand's own (empty) recorder.
    pub handle: PrometheusHandle,
}

/// Installs errand's recorder as the process's global one on the first call; every call
/// returns the same handle, so an api and workers started in one process (the tests) share
/// it.
pub fn install() -> Result<PrometheusHandle, Displaced> {
    let (handle, global) = INSTALLED.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("static, non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        let global = metrics::set_global_recorder(recorder).is_ok();
        (handle, global)
    });
    if *global {
        Ok(handle.clone())
    } else {
        Err(Displaced {
            handle: handle.clone(),
        })
    }
}

/// Runs the recorder's upkeep every [`UPKEEP`] until `stop`: histogram samples wait in
/// buffers until drained, so an unscraped process would grow without it.
pub async fn upkeep(handle: PrometheusHandle, stop: CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}
