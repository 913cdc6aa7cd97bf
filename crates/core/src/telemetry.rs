//! Tracing setup shared by both binaries: pretty logs for people, JSON for pipelines, and,
//! when `telemetry.otlp_endpoint` is set, OpenTelemetry spans exported over OTLP/HTTP.
//!
//! A task's trace crosses processes through its record: the api stores the W3C
//! `traceparent` of its request span with the task ([`current_traceparent`]), and the
//! worker's attempt span continues it ([`continue_trace`]). So one trace shows the submit,
//! the wait in the queue (the gap before each attempt) and every attempt with its finish.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, fmt::MakeWriter, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::settings::{LogFormat, LogSettings, TelemetrySettings};

/// Whether spans are exported: read on every submit and attempt, so a flag, not a lookup.
static TRACING: AtomicBool = AtomicBool::new(false);

/// Flushes and stops the span exporter when dropped (at the end of `main`), so the spans
/// of the last requests and attempts are not lost on a clean stop.
#[must_use = "dropping it stops the span exporter"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporting", &self.provider.is_some())
            .finish()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("telemetry: flushing spans at exit failed: {e}");
        }
    }
}

/// Why telemetry could not start: the binary refuses to run rather than lose its traces.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built from `telemetry.otlp_endpoint`.
    #[error("telemetry.otlp_endpoint: cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Installs the global subscriber. `RUST_LOG` wins over the configured filter so an operator
/// can raise verbosity without editing files. Generic over the sink so tests can silence it.
/// Must run inside a tokio runtime when traces are on (the exporter's batches are sent from
/// a thread of its own, which this starts).
pub fn init<W>(
    service: &'static str,
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    sink: W,
) -> Result<Telemetry, TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let provider = match &telemetry.otlp_endpoint {
        Some(endpoint) => Some(provider(service, endpoint)?),
        None => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        TRACING.store(true, Ordering::Relaxed);
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
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
        tracing::debug!(
            service,
            traces = provider.is_some(),
            "telemetry initialised"
        );
    }
    Ok(Telemetry { provider })
}

fn provider(service: &'static str, endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(Duration::from_secs(5))
        .with_headers(HashMap::new())
        .build()?;
    // The async-runtime processor sends from its own thread with a current-thread tokio
    // runtime: the hyper client needs a runtime, and actix's per-thread runtimes come and go.
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::TokioCurrentThread,
        )
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}

/// Whether traces are exported by this process.
pub fn tracing_enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// The W3C `traceparent` of the current span, to store with a task; `None` when traces are
/// off (nothing is stored, so the record costs nothing extra).
pub fn current_traceparent() -> Option<String> {
    if !tracing_enabled() {
        return None;
    }
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// The trace id of the current span, for a log field; `None` when traces are off.
pub fn current_trace_id() -> Option<String> {
    if !tracing_enabled() {
        return None;
    }
    let id = tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id();
    Some(id.to_string())
}

/// Makes `span` (not yet entered) a child of the span `traceparent` names, and returns the
/// trace id for the logs. With traces off, or a traceparent that does not parse, `span`
/// stays a root of its own trace.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) -> Option<String> {
    if !tracing_enabled() {
        return None;
    }
    if let Some(tp) = traceparent {
        let carrier = HashMap::from([("traceparent".to_owned(), tp.to_owned())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    let id = span.context().span().span_context().trace_id();
    Some(id.to_string())
}

/// Times one Redis call for `errand_redis_call_duration_seconds{op}` and counts its
/// failures in `errand_redis_call_errors_total{op}`. Without an installed recorder (metrics
/// off) both are no-ops.
pub async fn redis_call<T, E, F>(op: &'static str, call: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let result = call.await;
    metrics::histogram!(REDIS_SECONDS, "op" => op).record(started.elapsed().as_secs_f64());
    if result.is_err() {
        metrics::counter!(REDIS_ERRORS, "op" => op).increment(1);
    }
    result
}

/// Metric names shared by the api and the worker (both time their Redis calls).
pub const REDIS_SECONDS: &str = "errand_redis_call_duration_seconds";
/// Redis calls that failed, by operation (the duration histogram is `REDIS_SECONDS`).
pub const REDIS_ERRORS: &str = "errand_redis_call_errors_total";
