//! The OpenAPI 3.1 document, generated from the route and type annotations; the task
//! kinds' payload schemas are added from the catalog so they can never drift from it.

use errand_core::schedule::{Misfire, Schedule};
use errand_core::{
    store::{WorkerInfo, WorkerQueue},
    task::{Progress, TaskError, TaskRecord, TaskState},
};
use errand_tasks::{Catalog, KindInfo};
use utoipa::{
    OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{error::Problem, routes};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "errand",
        description = "A Redis-backed distributed task queue. Submit a task over HTTP and get its id at once; \
workers run it; read its state, progress and result back by id.\n\n\
Errors are `application/problem+json` (RFC 9457) and name the offending field. \
When API keys are configured, `/v1/*` needs `Authorization: Bearer <key>`.",
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
        routes::queues::list_queues,
        routes::queues::list_workers,
        routes::kinds::list_kinds,
        routes::schedules::create_schedule,
        routes::schedules::list_schedules,
        routes::schedules::get_schedule,
        routes::schedules::delete_schedule,
        routes::schedules::enable_schedule,
        routes::schedules::disable_schedule,
        routes::health::healthz,
        routes::health::readyz,
    ),
    components(schemas(Problem, TaskRecord, TaskState, Progress, TaskError, routes::tasks::SubmitTask, routes::tasks::TaskPage,
        routes::batch::SubmitBatch, routes::batch::BatchItem, routes::batch::BatchResult,
        routes::queues::QueueInfo, routes::queues::QueueList, routes::queues::WorkerList,
        WorkerInfo, WorkerQueue, KindInfo, routes::health::Health,
        Schedule, Misfire, routes::schedules::CreateSchedule, routes::schedules::SchedulePage)),
    tags(
        (name = "tasks", description = "Submit tasks and read them back"),
        (name = "operations", description = "Queues and workers"),
        (name = "schedules", description = "Periodic tasks: a cron expression in a time zone submits a task at every tick"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

pub fn document(catalog: &Catalog) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(routes::seed::SeedDoc::openapi());
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in catalog.schemas() {
        components.schemas.insert(name, schema);
    }
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An entry of api.api_keys"))
                .build(),
        ),
    );
    doc
}
