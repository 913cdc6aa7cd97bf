//! The OpenAPI 3.1 documents: `/openapi.json` (every route; the tutorial's tag last, grouped
//! apart) and `/openapi/product.json` (the same without the tutorial routes, for generating
//! clients).
//!
//! utoipa derives the base from the route and type annotations; the passes below then make
//! it a contract that client generators turn into typed clients:
//! - the submit, schedule and record schemas become unions discriminated on `kind`, one
//!   branch per catalog kind, so each kind's payload (and result) schema applies;
//! - bounds that come from settings are written in from the same settings the handlers read;
//! - every operation states its security requirement, from the same rule the API-key
//!   middleware applies (`access::needs_key`), and the guarded ones their 401;
//! - the event stream is a string, with the per-event schema beside it;
//! - a description written beside a `$ref` inside `oneOf` (which generators drop) moves to
//!   the property itself.
//!
//! The document is kept as JSON from there on: the passes are edits of a JSON tree, and
//! Swagger UI and ReDoc take it as JSON.

use std::collections::BTreeSet;

use errand_core::store::KindDefinition;
use errand_core::{
    Settings,
    task::{TaskState, WebhookEvent},
};
use errand_wire as wire;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::{access::scope::needs_key, error::Problem, routes};

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
/// Routes outside the documents that are open whatever the API keys: the documents and
/// their viewers.
const DOC_ROUTES: [&str; 4] = ["/openapi.json", PRODUCT_PATH, "/docs/", "/redoc"];

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
    kind_unions(&mut doc, kinds);
    settings_bounds(&mut doc, settings);
    event_stream(&mut doc);
    webhooks(&mut doc);
    security(&mut doc);
    hoist_ref_siblings(&mut doc);
    parameters_and_headers(&mut doc);
    tutorial_last(&mut doc);
    doc
}

/// `/openapi/product.json`: the document without the tutorial's routes and the schemas only
/// they use, so a product client is generated without them.
pub fn product(full: &Value) -> Value {
    let mut doc = full.clone();
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.retain(|_, item| !operations(item).all(|(_, op)| is_tutorial(op)));
    }
    if let Some(tags) = doc["tags"].as_array_mut() {
        tags.retain(|t| t["name"] != TUTORIAL_TAG);
    }
    if let Some(groups) = doc["x-tagGroups"].as_array_mut() {
        groups.retain(|g| {
            !g["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!(TUTORIAL_TAG)))
        });
    }
    let description = doc["info"]["description"].as_str().unwrap_or_default();
    doc["info"]["description"] = json!(format!(
        "{description}\n\nThis is the product API alone; `/openapi.json` also has the \
         tutorial routes."
    ));
    prune_schemas(&mut doc);
    doc
}

fn operations(item: &Value) -> impl Iterator<Item = (&String, &Value)> {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    item.as_object()
        .into_iter()
        .flatten()
        .filter(|(m, _)| METHODS.contains(&m.as_str()))
}

fn is_tutorial(op: &Value) -> bool {
    op["tags"]
        .as_array()
        .is_some_and(|t| t.contains(&json!(TUTORIAL_TAG)))
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// `fan_out` → `FanOut`: the kind's part of its branch names.
fn pascal(kind: &str) -> String {
    kind.split(|c: char| !c.is_ascii_alphanumeric())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// One branch of a kind union: the derived base object with `kind` pinned to the kind (and,
/// where the server accepts them, its aliases) and `payload`/`result` given the kind's
/// schemas, under component names of their own (`payload`, `result`).
struct Branch<'a> {
    doc: &'a DocKind,
    kind: &'a KindDefinition,
    payload: String,
    result: String,
}

impl Branch<'_> {
    fn kind_property(&self, with_aliases: bool) -> Value {
        let mut names = vec![self.kind.name.as_str()];
        if with_aliases {
            names.extend(self.kind.aliases.iter().map(String::as_str));
        }
        let description = if names.len() > 1 {
            format!(
                "`{}` (or its alias {})",
                self.kind.name,
                names[1..]
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("`{}`", self.kind.name)
        };
        json!({ "type": "string", "enum": names, "description": description })
    }

    fn payload_property(&self, base: &Value) -> Value {
        let mut p = schema_ref(&self.payload);
        if let Some(d) = base["properties"]["payload"]["description"].as_str() {
            p["description"] = json!(d);
        }
        p
    }
}

/// Replaces `wire::SubmitTask`, `wire::CreateSchedule` and `TaskRecord` by unions over the catalog's
/// kinds, discriminated on `kind`. The derived schemas serve as each branch's base, so a
/// field added to the Rust type appears in every branch.
fn kind_unions(doc: &mut Value, kinds: &[DocKind]) {
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has schemas");
    // A registered component name is kept unless it is empty, not a plain name, errand's
    // own or another kind's: two workers' kinds may both call their payload `Payload`.
    let mut taken: BTreeSet<String> = schemas.keys().cloned().collect();
    let mut name_for = |wanted: &str, fallback: String| {
        let plain = !wanted.is_empty()
            && wanted
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        let mut name = if plain && !taken.contains(wanted) {
            wanted.to_owned()
        } else {
            fallback
        };
        let base = name.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        taken.insert(name.clone());
        name
    };
    let branches: Vec<Branch<'_>> = kinds
        .iter()
        .map(|doc| {
            let kind = &doc.definition;
            let p = pascal(&kind.name);
            Branch {
                doc,
                kind,
                payload: name_for(&kind.payload_name, format!("{p}Payload")),
                result: name_for(&kind.result_name, format!("{p}Result")),
            }
        })
        .collect();
    for b in &branches {
        schemas.insert(b.payload.clone(), b.kind.payload_schema.clone());
        schemas.insert(b.result.clone(), b.kind.result_schema.clone());
    }

    union(
        schemas,
        "SubmitTask",
        &branches,
        true,
        |b| format!("Submit{}", pascal(&b.kind.name)),
        |b, base| {
            let mut s = base.clone();
            s["description"] = json!(format!("A `{}` task: {}", b.kind.name, b.kind.summary));
            s["properties"]["kind"] = b.kind_property(true);
            s["properties"]["payload"] = b.payload_property(base);
            s["required"] = if b.doc.payload_optional {
                json!(["kind"])
            } else {
                json!(["kind", "payload"])
            };
            s["example"] = json!({ "kind": b.kind.name, "payload": b.kind.example });
            s
        },
    );
    union(
        schemas,
        "CreateSchedule",
        &branches,
        true,
        |b| format!("CreateSchedule{}", pascal(&b.kind.name)),
        |b, base| {
            let mut s = base.clone();
            s["description"] = json!(format!(
                "A schedule of `{}` tasks: {}",
                b.kind.name, b.kind.summary
            ));
            s["properties"]["kind"] = b.kind_property(true);
            s["properties"]["payload"] = b.payload_property(base);
            s["required"] = if b.doc.payload_optional {
                json!(["cron", "kind"])
            } else {
                json!(["cron", "kind", "payload"])
            };
            s["example"] = json!({
                "id": format!("every-minute-{}", b.kind.name.replace('_', "-")),
                "cron": "0 * * * * *",
                "kind": b.kind.name,
                "payload": b.kind.example,
            });
            s
        },
    );
    union(
        schemas,
        "TaskRecord",
        &branches,
        false,
        |b| format!("{}TaskRecord", pascal(&b.kind.name)),
        |b, base| {
            let mut s = base.clone();
            s["description"] = json!(format!("A `{}` task's record.", b.kind.name));
            // Records carry the canonical name, never an alias.
            s["properties"]["kind"] = b.kind_property(false);
            s["properties"]["payload"] = b.payload_property(base);
            s["properties"]["result"] = json!({
                "description": base["properties"]["result"]["description"],
                "anyOf": [schema_ref(&b.result), {"type": "null"}],
            });
            // Every field is sent, null when it has no value.
            s["required"] = json!(
                base["properties"]
                    .as_object()
                    .map(|p| p.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
            );
            s
        },
    );
    // Batch items are submits; the derived schema already points there.
    debug_assert_eq!(
        schemas["SubmitBatch"]["properties"]["tasks"]["items"],
        schema_ref("SubmitTask")
    );
    // The derived record says "any object"; the union says which.
    if let Some(d) = schemas["TaskRecord"]["description"].as_str() {
        schemas["TaskRecord"]["description"] = json!(format!(
            "{d} One shape per task kind, told apart by `kind`; only kinds this server \
             offers are listed (a record of a kind it no longer offers still has the common \
             fields)."
        ));
    }
}

/// Makes `schemas[name]` a `oneOf` of one branch per kind, each built by `make` from the
/// derived schema, with a discriminator mapping every accepted name to its branch.
fn union(
    schemas: &mut Map<String, Value>,
    name: &str,
    branches: &[Branch<'_>],
    with_aliases: bool,
    branch_name: impl Fn(&Branch<'_>) -> String,
    make: impl Fn(&Branch<'_>, &Value) -> Value,
) {
    let base = schemas.remove(name).expect("derived base schema");
    let mut one_of = Vec::new();
    let mut mapping = Map::new();
    for b in branches {
        let n = branch_name(b);
        schemas.insert(n.clone(), make(b, &base));
        one_of.push(schema_ref(&n));
        let target = format!("#/components/schemas/{n}");
        mapping.insert(b.kind.name.clone(), json!(target));
        if with_aliases {
            for a in &b.kind.aliases {
                mapping.insert(a.clone(), json!(target));
            }
        }
    }
    let mut u = json!({
        "oneOf": one_of,
        "discriminator": { "propertyName": "kind", "mapping": mapping },
    });
    for key in ["description", "example"] {
        if let Some(v) = base.get(key) {
            u[key] = v.clone();
        }
    }
    schemas.insert(name.to_owned(), u);
}

/// The bounds that handlers take from settings.
fn settings_bounds(doc: &mut Value, settings: &Settings) {
    let api = &settings.api;
    set_param(
        doc,
        "/v1/tasks/{id}",
        "get",
        "wait",
        "maximum",
        json!(api.max_wait_secs),
    );
    set_param(
        doc,
        "/tasks/celery/task",
        "post",
        "duration",
        "maximum",
        json!(settings.tasks.max_sleep_secs),
    );
    let tasks = &mut doc["components"]["schemas"]["SubmitBatch"]["properties"]["tasks"];
    tasks["minItems"] = json!(1);
    tasks["maxItems"] = json!(api.max_batch);
}

/// What errand POSTs to a task's `callback.url` (docs/webhooks.md), as an OpenAPI 3.1
/// webhook, so a receiver generated from the document gets the message's type too.
fn webhooks(doc: &mut Value) {
    let types: Vec<&str> = WebhookEvent::ALL.iter().map(|e| e.type_name()).collect();
    doc["components"]["schemas"]["WebhookPayload"] = json!({
        "description": "The message a task's callback receives when the task ends.",
        "type": "object",
        "required": ["type", "timestamp", "data"],
        "properties": {
            "type": {"type": "string", "enum": types},
            "timestamp": {"type": "string", "format": "date-time", "description": "When the task ended."},
            "data": {
                "description": "The task's record as it ended (as `GET /v1/tasks/{id}` showed \
                    it then), without `payload`, `callback` and `webhook`.",
                "type": "object",
                "required": ["id", "kind", "queue", "state", "attempt"],
                "properties": {
                    "id": {"type": "string"},
                    "kind": {"type": "string"},
                    "queue": {"type": "string"},
                    "state": {"type": "string", "enum": ["succeeded", "failed", "cancelled"]},
                    "attempt": {"type": "integer", "minimum": 0},
                    "result": {"description": "Set when `succeeded`."},
                    "error": {"anyOf": [schema_ref("TaskError"), {"type": "null"}]},
                },
                "additionalProperties": true,
            },
        },
    });
    let header = |name: &str, description: &str| {
        json!({"name": name, "in": "header", "required": true, "description": description,
               "schema": {"type": "string"}})
    };
    doc["webhooks"] = json!({"taskEnded": {"post": {
        "summary": "A task with a callback ended",
        "description": "Signed per the Standard Webhooks specification: verify \
            `webhook-signature` over `{webhook-id}.{webhook-timestamp}.{raw body}` with a \
            secret from `webhooks.secrets` before trusting the body. Delivered at least once \
            (drop repeats by `webhook-id`); retried with doubling delays until a 2xx answer \
            or the retry window ends.",
        "parameters": [
            header("webhook-id", "The delivery's id, the same on every attempt."),
            header("webhook-timestamp", "Unix seconds of this attempt."),
            header("webhook-signature", "`v1,<base64 HMAC-SHA256>` per configured secret, space-separated."),
        ],
        "requestBody": {"required": true, "content": {"application/json": {"schema": schema_ref("WebhookPayload")}}},
        "responses": {"2XX": {"description": "Received. Any other answer, or none within the timeout, is retried."}},
    }}});
}

/// Sets `keyword` in the schema of query parameter `name` of `method path`.
fn set_param(doc: &mut Value, path: &str, method: &str, name: &str, keyword: &str, v: Value) {
    let params = doc["paths"][path][method]["parameters"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("{method} {path} has parameters"));
    let p = params
        .iter_mut()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has parameter {name}"));
    p["schema"][keyword] = v;
}

/// `GET /v1/tasks/{id}/events`: OpenAPI 3.1 has no keyword for one event of a stream
/// (3.2's `itemSchema`), and generators read a `text/event-stream` schema as the whole
/// body: an object schema there makes them wait for the stream's end and then fail to parse
/// it as JSON. So the body is a string, and `TaskEvent` (one event, its `data` a
/// `TaskRecord` as JSON text) sits beside it in `x-item-schema`, the 3.2 keyword's meaning
/// under an extension name (`scripts/schemathesis.sh` checks each event against it).
fn event_stream(doc: &mut Value) {
    let states: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
    let mut change = states.clone();
    change.push("progress");
    doc["components"]["schemas"]["TaskEvent"] = json!({
        "description": "One server-sent event of `GET /v1/tasks/{id}/events`. `event` is the \
            state the task entered, or `progress` for a progress report; `data` is the full \
            task record as JSON. The last event is a terminal state, or `gone` (data `{}`) \
            when the record disappeared.",
        "oneOf": [
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"type": "string", "enum": change},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": schema_ref("TaskRecord"),
                    },
                },
            },
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": "gone"},
                    "data": {"const": "{}"},
                },
            },
        ],
    });
    stream_of(doc, "/v1/tasks/{id}/events", "TaskEvent");
    doc["components"]["schemas"]["WorkflowEvent"] = json!({
        "description": "One server-sent event of `GET /v1/workflows/{id}/events`: `workflow` \
            with the whole workflow as JSON, now and on every change of it or a step; the \
            last is the one showing it ended, or `gone` (data `{}`) when it expired.",
        "oneOf": [
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": "workflow"},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": schema_ref("WorkflowView"),
                    },
                },
            },
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": "gone"},
                    "data": {"const": "{}"},
                },
            },
        ],
    });
    stream_of(doc, "/v1/workflows/{id}/events", "WorkflowEvent");
}

/// The 200 of the event stream at `path`: text, each event a `schema` (`x-item-schema`,
/// what OpenAPI 3.2 calls `itemSchema`).
fn stream_of(doc: &mut Value, path: &str, schema: &str) {
    doc["paths"][path]["get"]["responses"]["200"]["content"] = json!({
        "text/event-stream": {
            "schema": {
                "type": "string",
                "description": format!("The event stream as text (`event: <name>` and `data: <json>` \
                    lines, a blank line after each event, `: keep-alive` comments). Each \
                    event is a `{schema}` (see `x-item-schema`)."),
            },
            "x-item-schema": schema_ref(schema),
        },
    });
}

/// Every operation says whether it needs the key, by the rule the middleware applies; the
/// guarded ones document the 401 it answers without a valid key and the 403 it answers to a
/// key whose scope is too weak (`access::required_scope`).
fn security(doc: &mut Value) {
    let mut open = Vec::new();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let guarded = needs_key(path);
            for (method, op) in item.as_object_mut().into_iter().flatten() {
                if !op.is_object() || method == "parameters" {
                    continue;
                }
                if guarded {
                    op["security"] = json!([{ "bearer": [] }]);
                    op["responses"]["401"] =
                        json!({ "$ref": "#/components/responses/Unauthorized" });
                    op["responses"]["403"] = json!({ "$ref": "#/components/responses/Forbidden" });
                } else {
                    op["security"] = json!([]);
                    open.push(format!("`{} {path}`", method.to_uppercase()));
                }
            }
        }
    }
    debug_assert!(DOC_ROUTES.iter().all(|r| !needs_key(r)));
    open.extend(DOC_ROUTES.iter().map(|r| format!("`GET {r}`")));
    let description = doc["info"]["description"].as_str().unwrap_or_default();
    doc["info"]["description"] = json!(format!(
        "{description}\n\n**Authentication.** When the server has API keys (`api.api_keys`), \
         every operation that lists the `bearer` security requirement needs \
         `Authorization: Bearer <key>` and answers 401 without a valid one, 403 when the \
         key's scope is too weak (`read` for GET, `submit` for submitting, cancelling and \
         retrying tasks and the tutorial routes, `admin` for the rest). That is all of them \
         but these, which are always open: {}. Without keys configured, nothing is checked.",
        open.join(", ")
    ));
    let components = &mut doc["components"];
    components["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An entry of the server's `api.api_keys`.",
        }
    });
    components["responses"]["Forbidden"] = json!({
        "description": "The key is valid but its scope does not cover this operation",
        "content": {
            "application/problem+json": { "schema": schema_ref("Problem") }
        },
    });
    components["responses"]["Unauthorized"] = json!({
        "description": "API keys are configured and the request had none that matched",
        "headers": {
            "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {"type": "string"},
            }
        },
        "content": {
            "application/problem+json": { "schema": schema_ref("Problem") }
        },
    });
}

/// utoipa writes a nullable reference as `oneOf: [{type: null}, {$ref, description}]`;
/// generators read the description of the property, not of a `oneOf` branch, so it moves up.
fn hoist_ref_siblings(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for key in ["oneOf", "anyOf"] {
                let Some(Value::Array(items)) = m.get_mut(key) else {
                    continue;
                };
                if !items.iter().any(|i| i == &json!({"type": "null"})) {
                    continue;
                }
                let mut lifted = Map::new();
                for i in items.iter_mut() {
                    if let Some(obj) = i.as_object_mut()
                        && obj.contains_key("$ref")
                    {
                        obj.retain(|k, v| {
                            if k == "$ref" {
                                true
                            } else {
                                lifted.insert(k.clone(), v.clone());
                                false
                            }
                        });
                    }
                }
                for (k, v) in lifted {
                    m.entry(k).or_insert(v);
                }
            }
            m.values_mut().for_each(hoist_ref_siblings);
        }
        Value::Array(a) => a.iter_mut().for_each(hoist_ref_siblings),
        _ => {}
    }
}

/// A query or header parameter is absent or a string, never JSON null, so `Option<T>`'s
/// null goes; the `Location` header is sent with every response that documents it.
fn parameters_and_headers(doc: &mut Value) {
    for (_, item) in doc["paths"].as_object_mut().into_iter().flatten() {
        for (_, op) in item.as_object_mut().into_iter().flatten() {
            // `get_mut`, not indexing: indexing a JSON object inserts what it does not find.
            let params = op.get_mut("parameters").and_then(Value::as_array_mut);
            for p in params.into_iter().flatten() {
                let schema = p.get_mut("schema");
                if let Some(types) = schema.and_then(|s| s.get_mut("type")) {
                    if let Some(list) = types.as_array_mut() {
                        list.retain(|t| t != "null");
                    }
                    if let Some([only]) = types.as_array().map(Vec::as_slice) {
                        *types = only.clone();
                    }
                }
            }
            let responses = op.get_mut("responses").and_then(Value::as_object_mut);
            for (_, res) in responses.into_iter().flatten() {
                if let Some(location) = res.get_mut("headers").and_then(|h| h.get_mut("Location")) {
                    location["required"] = json!(true);
                }
            }
        }
    }
}

/// The tutorial tag goes last, described as such, and ReDoc groups it apart.
fn tutorial_last(doc: &mut Value) {
    let Some(tags) = doc["tags"].as_array_mut() else {
        return;
    };
    let (mut tutorial, mut product): (Vec<Value>, Vec<Value>) =
        tags.drain(..).partition(|t| t["name"] == TUTORIAL_TAG);
    for t in &mut tutorial {
        let d = t["description"].as_str().unwrap_or_default();
        t["description"] = json!(format!(
            "Tutorial, not product API: {d} `{PRODUCT_PATH}` is this document without them."
        ));
    }
    let names: Vec<Value> = product.iter().map(|t| t["name"].clone()).collect();
    product.append(&mut tutorial);
    *tags = product;
    doc["x-tagGroups"] = json!([
        {"name": "API", "tags": names},
        {"name": "Tutorial", "tags": [TUTORIAL_TAG]},
    ]);
}

/// Drops the schemas nothing left in the document refers to, directly or through others.
fn prune_schemas(doc: &mut Value) {
    fn refs(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref")
                    && let Some(name) = r.strip_prefix("#/components/schemas/")
                {
                    out.insert(name.to_owned());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let schemas = doc["components"]["schemas"].take();
    let mut root = doc.clone();
    root["components"]["schemas"] = json!({});
    let mut keep = BTreeSet::new();
    refs(&root, &mut keep);
    let mut todo: Vec<String> = keep.iter().cloned().collect();
    while let Some(name) = todo.pop() {
        let mut found = BTreeSet::new();
        refs(&schemas[&name], &mut found);
        for f in found {
            if keep.insert(f.clone()) {
                todo.push(f);
            }
        }
    }
    let kept: Map<String, Value> = schemas
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| keep.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    doc["components"]["schemas"] = Value::Object(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_pascal_case() {
        assert_eq!(pascal("fan_out"), "FanOut");
        assert_eq!(pascal("sha256"), "Sha256");
        assert_eq!(pascal("sleep"), "Sleep");
    }

    #[test]
    fn a_description_beside_a_nullable_ref_moves_to_the_property() {
        let mut v = json!({"properties": {"error": {"oneOf": [
            {"type": "null"},
            {"$ref": "#/components/schemas/TaskError", "description": "why"},
        ]}}});
        hoist_ref_siblings(&mut v);
        assert_eq!(
            v,
            json!({"properties": {"error": {"description": "why", "oneOf": [
                {"type": "null"},
                {"$ref": "#/components/schemas/TaskError"},
            ]}}})
        );
    }

    /// utoipa takes only literals in `#[schema(...)]`, so the documented bounds are copies;
    /// this holds each copy to the constant the handlers validate against.
    #[test]
    fn documented_input_bounds_are_the_validated_ones() {
        use errand_core::{
            schedule::ScheduleId,
            task::{QueueName, TaskId, bounds},
        };
        let mut api = ApiDoc::openapi();
        api.merge(routes::tutorial::TutorialDoc::openapi());
        let raw = serde_json::to_value(api).unwrap();
        let num = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
        for name in ["SubmitTask", "CreateSchedule", "StepRequest"] {
            let p = &raw["components"]["schemas"][name]["properties"];
            let range = |field: &str, lo: f64, hi: f64| {
                let f = &p[field];
                if lo > 0.0 {
                    assert_eq!(num(&f["minimum"]), lo, "{name}.{field}");
                }
                assert_eq!(num(&f["maximum"]), hi, "{name}.{field}");
            };
            let (lo, hi) = bounds::MAX_ATTEMPTS.into_inner();
            range("max_attempts", lo.into(), hi.into());
            let (lo, hi) = bounds::TIMEOUT_SECS.into_inner();
            range("timeout_secs", lo as f64, hi as f64);
            let (lo, hi) = bounds::RESULT_TTL_SECS.into_inner();
            range("result_ttl_secs", lo as f64, hi as f64);
            if name != "CreateSchedule" {
                let (lo, hi) = bounds::PRIORITY.into_inner();
                range("priority", lo.into(), hi.into());
            }
            if name == "SubmitTask" {
                let (lo, hi) = bounds::DELAY_SECS.into_inner();
                range("delay_secs", lo as f64, hi as f64);
                let (lo, hi) = bounds::UNIQUE_FOR_SECS.into_inner();
                range("unique_for_secs", lo as f64, hi as f64);
                let (lo, hi) = bounds::PRIORITY.into_inner();
                range("priority", lo.into(), hi.into());
            }
            assert_eq!(p["queue"]["pattern"], QueueName::PATTERN, "{name}.queue");
        }
        // Every queue parameter, and every id pattern, wherever the document states one.
        let mut queue_params = 0;
        let mut stack = vec![&raw];
        while let Some(v) = stack.pop() {
            if v["name"] == "queue" && v["schema"].is_object() {
                queue_params += 1;
                assert_eq!(v["schema"]["pattern"], QueueName::PATTERN, "{v}");
            }
            if let Some(p) = v["pattern"].as_str() {
                let max = if p == "^[A-Za-z0-9_:-]{1,48}$" {
                    errand_core::workflow::WorkflowId::MAX_LEN
                } else if p == "^[A-Za-z0-9_-]{1,64}$" {
                    errand_core::workflow::MAX_STEP_NAME
                } else if p.contains(':') {
                    TaskId::MAX_LEN
                } else if p.contains("_.-") {
                    QueueName::MAX_LEN
                } else {
                    ScheduleId::MAX_LEN
                };
                assert!(p.ends_with(&format!("{{1,{max}}}$")), "{p}");
            }
            match v {
                Value::Object(m) => stack.extend(m.values()),
                Value::Array(a) => stack.extend(a),
                _ => {}
            }
        }
        assert!(queue_params >= 3, "{queue_params} queue parameters");
    }
}
