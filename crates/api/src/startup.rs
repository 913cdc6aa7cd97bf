//! Builds the HTTP application from settings. Binding is separate from serving so tests
//! can bind port 0 and learn the port before the server runs.

use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, dev::Server, middleware::from_fn, web};
use errand_core::{Settings, TaskStore, shutdown::Shutdown, store};
use errand_kinds::{Catalog, Limits};
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;
use utoipa_swagger_ui::SwaggerUi;

use crate::{access, error::ApiError, events::Events, openapi, routes, state::AppState};

/// The api, built and bound but not yet serving: tests bind port 0 and read `port` first.
pub struct Application {
    port: u16,
    server: Server,
    /// Owns the background loops (the layout migration); actix owns the signals.
    shutdown: Shutdown,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Checks the access settings, binds the listener, connects (lazily) to Redis and
    /// starts the background loops; fails on settings that cannot work.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.check_api_access()?;
        let listener = TcpListener::bind((settings.api.host.as_str(), settings.api.port))?;
        let port = listener.local_addr()?.port();
        let conn = store::connect(&settings.redis)?;
        let store = TaskStore::new(conn, store::Layout::new(&settings.redis.key_prefix))
            .with_retention(store::Retention::from_settings(&settings));
        // An older layout is converted before tasks are served from it; meanwhile reads of
        // the old tasks find nothing yet (docs/scaling.md, "Upgrading").
        let shutdown = Shutdown::new(std::time::Duration::from_secs(5));
        shutdown.spawn_work(migrate_until_done(store.clone(), shutdown.work()));
        let catalog = Catalog::new(Limits::from(&settings.tasks));
        let docs = openapi::Documents::build(&catalog, &settings);
        let max_body = settings.api.max_body_bytes;
        let tutorial = routes::tutorial::Tutorial::new(&settings);
        let redoc = crate::redoc::RedocAssets::load(&settings.api.redoc_js_path, &docs.full);
        let events = Events::start(
            settings.redis.clients()?,
            store.layout().events_channel(),
            &shutdown,
        );
        let keys = access::Keys::new(&settings.api.api_keys);
        let ui = crate::ui::Ui::new(&settings);
        let rate_limiter = access::RateLimiter::new(&settings.api.rate_limit);
        crate::metrics::install();
        let state = web::Data::new(AppState {
            store,
            catalog,
            settings,
            events,
            keys,
            rate_limiter,
        });

        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(crate::error::retry_after))
                .wrap(from_fn(access::guard))
                .wrap(TracingLogger::default())
                .wrap(from_fn(crate::metrics::track))
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
                .service(crate::metrics::scrape)
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
                .service(routes::queues::pause_queue)
                .service(routes::queues::resume_queue)
                .configure(|cfg| tutorial.configure(cfg))
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
                .configure(|cfg| ui.configure(cfg))
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
        Ok(Self {
            port,
            server,
            shutdown,
        })
    }

    /// The port the listener is bound to (the one the OS picked for port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT (actix handles both), then drains in-flight requests
    /// (actix's own grace), then stops and joins the background loops.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.shutdown.trigger();
        self.shutdown
            .run(std::time::Duration::ZERO, async {}, || {})
            .await;
        result
    }
}

/// Runs the layout migration, again after a pause while Redis is unreachable, until done
/// or `stop` (a call in flight is let finish).
async fn migrate_until_done(store: TaskStore, stop: CancellationToken) {
    let mut pause = std::time::Duration::from_millis(200);
    while let Err(e) = store.migrate().await {
        tracing::warn!(error = %e, "layout migration failed; trying again");
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => return,
        }
        pause = (pause * 2).min(std::time::Duration::from_secs(5));
    }
}
