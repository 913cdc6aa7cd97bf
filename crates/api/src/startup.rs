//! Builds the HTTP application from settings. Binding is separate from serving so tests
//! can bind port 0 and learn the port before the server runs.

use std::net::TcpListener;

use actix_web::{
    App, HttpResponse, HttpServer,
    body::MessageBody,
    dev::{Server, ServiceRequest, ServiceResponse},
    http::header,
    middleware::{Next, from_fn},
    web,
};
use errand_core::{Settings, TaskStore, store};
use errand_tasks::{Catalog, Limits};
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;
use utoipa_swagger_ui::SwaggerUi;

use crate::{error::ApiError, events::Events, openapi, routes, state::AppState};

pub struct Application {
    port: u16,
    server: Server,
    stop: CancellationToken,
}

impl Application {
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((settings.api.host.as_str(), settings.api.port))?;
        let port = listener.local_addr()?.port();
        let conn = store::connect(&settings.redis)?;
        let store = TaskStore::new(conn, store::Layout::new(&settings.redis.key_prefix));
        let catalog = Catalog::new(Limits::from(&settings.tasks));
        let docs = openapi::Documents::build(&catalog, &settings);
        let max_body = settings.api.max_body_bytes;
        let stop = CancellationToken::new();
        let seed = routes::seed::Seed::new(&settings);
        let redoc = crate::redoc::RedocAssets::load(&settings.api.redoc_js_path, &docs.full);
        let events = Events::start(
            redis::Client::open(settings.redis.url.as_str())?,
            store.layout().events_channel(),
            stop.clone(),
        );
        let state = web::Data::new(AppState {
            store,
            catalog,
            settings,
            events,
        });

        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(require_api_key))
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    ApiError::BadRequest {
                        field: Some("path".into()),
                        detail: e.to_string(),
                    }
                    .into()
                }))
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::BadRequest {
                        field: Some("query".into()),
                        detail: e.to_string(),
                    }
                    .into()
                }))
                .service(routes::health::healthz)
                .service(routes::health::readyz)
                .service(routes::kinds::list_kinds)
                .service(routes::batch::submit_batch)
                .service(routes::tasks::submit_task)
                .service(routes::tasks::list_tasks)
                .service(routes::tasks::get_task)
                .service(routes::watch::task_events)
                .service(routes::control::cancel_task)
                .service(routes::control::retry_task)
                .service(routes::queues::list_queues)
                .service(routes::queues::list_workers)
                .configure(|cfg| seed.configure(cfg))
                .service(routes::schedules::create_schedule)
                .service(routes::schedules::list_schedules)
                .service(routes::schedules::get_schedule)
                .service(routes::schedules::delete_schedule)
                .service(routes::schedules::enable_schedule)
                .service(routes::schedules::disable_schedule)
                .service(web::redirect("/docs", "/docs/"))
                .service(
                    SwaggerUi::new("/docs/{_:.*}").external_urls_from_iter_unchecked([
                        ("/openapi.json", docs.full.clone()),
                        (openapi::PRODUCT_PATH, docs.product.clone()),
                    ]),
                )
                .configure(|cfg| redoc.configure(cfg))
                .default_service(web::to(|req: actix_web::HttpRequest| async move {
                    Err::<HttpResponse, _>(ApiError::RouteNotFound(format!(
                        "{} {}",
                        req.method(),
                        req.path()
                    )))
                }))
        })
        .listen(listener)?
        .shutdown_timeout(30)
        .run();
        Ok(Self { port, server, stop })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT (actix handles both), then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.stop.cancel();
        result
    }
}

/// When `api.api_keys` is set, `/v1/*` and the seed chapter's `/async` and `/tasks` routes
/// need `Authorization: Bearer <key>`; the docs and health routes stay open.
async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let keys = &req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.api.api_keys.clone())
        .unwrap_or_default();
    if !keys.is_empty() && needs_key(req.path()) {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !presented.is_some_and(|p| keys.iter().any(|k| k == p)) {
            let res = req.into_response(actix_web::ResponseError::error_response(
                &ApiError::Unauthorized,
            ));
            return Ok(res.map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Which paths the API-key guard covers; the OpenAPI document states the same per operation.
pub(crate) fn needs_key(path: &str) -> bool {
    path.starts_with("/v1/")
        || ["/async", "/tasks"].iter().any(|scope| {
            path.strip_prefix(scope)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}
