//! The OpenAPI 3.1 documents: `/openapi.json` (every route; the tutorial's tag last, grouped
//! apart) and `/openapi/product.json` (the same without the tutorial routes, for generating
//! clients).
//!
//! utoipa derives the base from the route and type annotations; the passes (one module
//! each, see Layout) then make it a contract that client generators turn into typed
//! clients:
//! - the submit, schedule and record schemas become unions discriminated on `kind`, one
//!   branch per catalog kind, so each kind's payload (and result) schema applies;
//! - bounds that come from settings are written in from the same settings the handlers read;
//! - every operation states its security requirement, from the same rule the API-key
//!   middleware applies (`access::scope::needs_key`), and the guarded ones their 401 and 403;
//! - the event stream is a string, with the per-event schema beside it;
//! - a description written beside a `$ref` inside `oneOf` (which generators drop) moves to
//!   the property itself.
//!
//! The document is kept as JSON from there on: the passes are edits of a JSON tree, and
//! Swagger UI and ReDoc take it as JSON.
//!
//! # Layout
//! - [`kinds`]: the per-kind unions of the submit, schedule and record schemas.
//! - [`bounds`]: limits from settings written in, and the literals held to errand-core's.
//! - [`security`]: each operation's security requirement, 401 and 403.
//! - [`streams`]: the event streams as strings, each event's schema beside.
//! - [`webhooks`]: the callback's message as an OpenAPI webhook.
//! - [`generators`]: what utoipa writes that client generators misread, rewritten.
//! - [`product`]: the tutorial routes apart: last in the full document, out of the product one.

mod bounds;
mod generators;
mod kinds;
mod product;
mod security;
mod streams;
mod webhooks;

use errand_core::Settings;
use errand_core::store::KindDefinition;
use errand_wire as wire;
use serde_json::{Value, json};
use utoipa::OpenApi;

pub use product::product;

use crate::{error::Problem, routes};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "errand",
        description = "A Redis-backed distributed task queue. Submit a task over HTTP and get its id at once; \
workers run it; read its state, progress and result back by id.\n\n\
Errors are `application/problem+json` (RFC 9457) and name the offending field.",
        license(name = "MIT"),
    ),
    paths(
        routes::tasks::submit_task,
        routes::batch::submit_batch,
        routes::tasks::list_tasks,
        routes::tasks::get_task,
        routes::watch::task_events,
        routes::control::cancel_task,
        routes::control::retry_task,
        routes::workflows::submit_workflow,
        routes::workflows::list_workflows,
        routes::workflows::get_workflow,
        routes::workflows::cancel_workflow,
        routes::workflows::workflow_events,
        routes::queues::list_queues,
        routes::queues::list_workers,
        routes::queues::pause_queue,
        routes::queues::resume_queue,
        routes::limits::get_limits,
        routes::bulk::start_bulk,
        routes::bulk::get_bulk,
        routes::limits::set_limits,
        routes::kinds::list_kinds,
        routes::kinds::delete_kind,
        routes::worker::register,
        routes::worker::lease,
        routes::worker::heartbeat,
        routes::worker::complete,
        routes::worker::complete_one,
        routes::schedules::create_schedule,
        routes::schedules::list_schedules,
        routes::schedules::get_schedule,
        routes::schedules::delete_schedule,
        routes::schedules::enable_schedule,
        routes::schedules::disable_schedule,
        routes::health::healthz,
        routes::health::readyz,
    ),
    components(schemas(Problem, wire::TaskRecord, wire::TaskState, wire::Progress, wire::TaskError, wire::Callback, wire::WebhookEvent, wire::WebhookState, wire::WebhookStatus, wire::SubmitTask, wire::TaskPage,
        wire::SubmitBatch, wire::BatchItem, wire::BatchResult,
        wire::QueueInfo, wire::QueueList, wire::QueuePause, wire::WorkerList,
        wire::StartBulk, wire::BulkJob, wire::BulkAction, wire::Rate, wire::Limits, wire::SetLimits, wire::QueueLimits, wire::Held, wire::KeyWaiting,
        wire::WorkerInfo, wire::WorkerQueue, wire::WorkerKind, wire::KindInfo,
        wire::RegisterWorker, wire::QueueSpec, wire::KindSpec, wire::Registered,
        wire::LeaseRequest, wire::Leased, wire::LeasedTask,
        wire::HeartbeatRequest, wire::HeldTask, wire::ProgressIn, wire::HeartbeatAnswer,
        wire::CompleteRequest, wire::Report, wire::ReportOutcome, wire::ReportError,
        wire::CompleteAnswer, wire::ReportResult, wire::Recorded, routes::health::Health,
        wire::Schedule, wire::Misfire, wire::CreateSchedule, wire::SchedulePage,
        wire::SubmitWorkflow, wire::WorkflowStep, wire::After, wire::Dependency,
        wire::OnFailure, wire::Workflow, wire::StepInfo, wire::WorkflowState,
        wire::StepState, wire::WorkflowSummary, wire::WorkflowPage)),
    tags(
        (name = "tasks", description = "Submit tasks and read them back"),
        (name = "workflows", description = "Steps (tasks of any kind, in any queue) and the dependencies between them: chains, groups, chords and map steps, results passed along (docs/workflows.md)"),
        (name = "operations", description = "Queues and workers"),
        (name = "workers", description = "The HTTP worker protocol: workers in any language register their kinds, lease tasks, heartbeat and report (key scope `worker`; docs/http-workers.md)"),
        (name = "schedules", description = "Periodic tasks: a cron expression in a time zone submits a task at every tick"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

/// The tag of the tutorial routes (`routes::tutorial`), which the product document leaves out.
pub const TUTORIAL_TAG: &str = "tutorial";
/// Where the document without the tutorial routes is served.
pub const PRODUCT_PATH: &str = "/openapi/product.json";

/// Both documents, built once at startup.
#[derive(Debug)]
pub struct Documents {
    /// `/openapi.json`: the product API and the tutorial routes.
    pub full: Value,
    /// `/openapi/product.json`: the product API alone, what client generators should read.
    pub product: Value,
}

/// A kind as the documents show it: its registered definition, and whether a submit may
/// leave its payload out.
#[derive(Debug, Clone)]
pub struct DocKind {
    /// The definition that validates the kind now.
    pub definition: KindDefinition,
    /// Whether `{}` passes the kind's checks (the payload is then optional).
    pub payload_optional: bool,
}

impl DocKind {
    /// What a document shows of `catalog`'s kinds with nothing registered: the built-in
    /// kinds as this configuration would seed them (`errand-api openapi`).
    pub fn of(catalog: &errand_kinds::Catalog) -> Vec<Self> {
        catalog
            .definitions()
            .into_iter()
            .map(|definition| Self {
                payload_optional: catalog.validate(&definition.name, &json!({})).is_ok(),
                definition,
            })
            .collect()
    }
}

impl Documents {
    /// Both documents for these kinds (the unions) and settings (limits, security).
    pub fn build(kinds: &[DocKind], settings: &Settings) -> Self {
        let full = document(kinds, settings);
        let product = product(&full);
        Self { full, product }
    }
}

/// The documents for the kinds registered now, built once per registry snapshot: a kind a
/// worker registers gets its typed branch without the api being restarted.
pub(crate) async fn documents(
    state: &crate::state::AppState,
) -> Result<std::sync::Arc<Documents>, errand_core::StoreError> {
    state
        .kinds
        .derived(&state.store, |snapshot, kinds| {
            let docs: Vec<DocKind> = snapshot
                .kinds
                .values()
                .map(|k| DocKind {
                    definition: k.definition().clone(),
                    payload_optional: k.payload_optional(kinds),
                })
                .collect();
            Documents::build(&docs, &state.settings)
        })
        .await
}

/// `/openapi.json`: every route, with the tutorial's tag last and grouped apart.
pub fn document(kinds: &[DocKind], settings: &Settings) -> Value {
    let mut api = ApiDoc::openapi();
    api.merge(routes::tutorial::TutorialDoc::openapi());
    let mut doc = serde_json::to_value(&api).expect("an OpenAPI document serializes");
    kinds::kind_unions(&mut doc, kinds);
    bounds::settings_bounds(&mut doc, settings);
    streams::event_stream(&mut doc);
    webhooks::webhooks(&mut doc);
    security::security(&mut doc);
    generators::hoist_ref_siblings(&mut doc);
    generators::parameters_and_headers(&mut doc);
    product::tutorial_last(&mut doc);
    doc
}

/// A reference to the component schema `name`, as the passes write one.
fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}
