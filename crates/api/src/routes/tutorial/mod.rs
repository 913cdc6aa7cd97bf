//! The tutorial routes: the routes of the tutorial chapter errand grew from ("async
//! programming in practice", a FastAPI + Celery lesson), kept working with the chapter's
//! own curl commands; `docs/guide.md` walks through them. They are not the product API
//! (`/v1/*`): the OpenAPI tag `tutorial` groups them apart, and `/openapi/product.json`
//! leaves them out.
//!
//! - [`async_demo`]: sequential awaits vs `tokio::join!` (`/async/await-sequential`,
//!   `/async/gather-concurrent`, `/async/basic`).
//! - [`blocking`]: a blocking call on the executor vs on the blocking pool
//!   (`/async/blocking`, `/async/offloaded`).
//! - [`background`]: in-process background tasks (`/tasks/background/*`), in memory only.
//! - [`celery`]: the chapter's queued task (`/tasks/celery/*`) over errand's real queue.
//!
//! The app-wide API-key guard (`startup.rs`) covers `/async` and `/tasks` as well as `/v1/`,
//! because the celery route enqueues real work and the blocking demo ties up an executor
//! thread.

pub(crate) mod async_demo;
pub(crate) mod background;
pub(crate) mod blocking;
pub(crate) mod celery;

use actix_web::web;
use utoipa::OpenApi;

use errand_core::task::TaskId;

use crate::{background::BackgroundTasks, error::ApiError, routes::query::Query};

/// What the tutorial routes share across HTTP workers: the process's background-task registry.
#[derive(Clone)]
pub(crate) struct Tutorial {
    background: web::Data<BackgroundTasks>,
}

impl Tutorial {
    pub(crate) fn new(settings: &errand_core::Settings) -> Self {
        Self {
            background: web::Data::new(BackgroundTasks::new(settings.api.max_background_tasks)),
        }
    }

    /// Registers the routes on one HTTP worker's app.
    pub(crate) fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            web::scope("/async")
                .service(async_demo::await_sequential)
                .service(async_demo::gather_concurrent)
                .service(async_demo::basic)
                .service(blocking::blocking)
                .service(blocking::offloaded),
        )
        .service(
            web::scope("/tasks")
                .app_data(self.background.clone())
                .service(background::start_simple)
                .service(background::simple_status)
                .service(celery::submit_celery_task)
                .service(celery::get_celery_task),
        );
    }
}

/// The OpenAPI paths and schemas of the tutorial routes, merged into the main document.
#[derive(OpenApi)]
#[openapi(
    paths(
        async_demo::await_sequential,
        async_demo::gather_concurrent,
        async_demo::basic,
        blocking::blocking,
        blocking::offloaded,
        background::start_simple,
        background::simple_status,
        celery::submit_celery_task,
        celery::get_celery_task,
    ),
    components(schemas(
        async_demo::Timeline,
        async_demo::Step,
        async_demo::Basic,
        blocking::ProbeReport,
        blocking::Work,
        crate::background::BackgroundStatus,
        crate::background::BackgroundState,
        celery::CeleryTask,
        celery::CeleryStatus,
    )),
    tags((name = "tutorial", description = "The tutorial chapter's demo routes: sequential vs \
concurrent awaits, blocking vs offloaded work, in-process background tasks, and the chapter's \
Celery-style task over errand's real queue. See docs/guide.md."))
)]
pub(crate) struct TutorialDoc;

/// A required query parameter that was not given.
fn required(name: &str) -> ApiError {
    super::query::bad(name, "required")
}

/// The required `task_id` query parameter, as a task id.
fn query_task_id(q: &mut Query) -> Result<TaskId, ApiError> {
    let task_id = q.str("task_id").ok_or_else(|| required("task_id"))?;
    TaskId::parse(&task_id).map_err(|e| super::query::bad("task_id", &e.to_string()))
}

/// The `{task_id}` of a status route's path, as a task id.
fn path_task_id(task_id: &str) -> Result<TaskId, ApiError> {
    TaskId::parse(task_id).map_err(|e| ApiError::BadRequest {
        field: Some("task_id".into()),
        detail: e.to_string(),
    })
}
