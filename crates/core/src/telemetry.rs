//! Tracing setup shared by both binaries: pretty logs for people, JSON for pipelines.

use tracing_subscriber::{
    EnvFilter, fmt::MakeWriter, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::settings::{LogFormat, LogSettings};

/// Installs the global subscriber. `RUST_LOG` wins over the configured filter so an operator
/// can raise verbosity without editing files. Generic over the sink so tests can silence it.
pub fn init<W>(service: &'static str, log: &LogSettings, sink: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match log.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(sink),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(sink),
            )
            .try_init(),
    };
    if result.is_ok() {
        tracing::debug!(service, "telemetry initialised");
    }
}
