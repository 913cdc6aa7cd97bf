//! Builds the HTTP application from settings. Binding is separate from serving so tests
//! can bind port 0 and learn the port before the server runs.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{App, HttpResponse, HttpServer, dev::Server, middleware::from_fn, web};
use errand_core::{Settings, TaskStore, shutdown::Shutdown, store};
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    access, error::ApiError, events::Events, openapi, registry::Kinds, routes, state::AppState,
};

/// The api, built and bound but not yet serving: tests bind port 0 and read `port` first.
pub struct Application {
    port: u16,
    server: Server,
    /// Owns the stop: the signals (when listened for), the background loops (the layout
    /// migration, the events subscription, the metrics upkeep) and the token long-polls and streams end on.
    shutdown: Shutdown,
    /// `api.shutdown_grace_secs`.
    grace: Duration,
    /// Resolves once the layout migration has had its first look at Redis.
    first_look: tokio::sync::oneshot::Receiver<()>,
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
        let connector = store::connector(&settings.redis)?;
        let layout = store::Layout::new(&settings.redis.key_prefix);
        // This runtime's own connection: the HTTP worker threads open theirs (see
        // `Connector`), so no connection is ever polled from two runtimes.
        let retention = store::Retention::from_settings(&settings);
        let store = TaskStore::new(connector.open()?, layout.clone()).with_retention(retention);
        // An older layout is converted before tasks are served from it; meanwhile reads of
        // the old tasks find nothing yet (docs/scaling.md, "Upgrading").
        let shutdown = Shutdown::new(JOIN_DEADLINE);
        let (looked, first_look) = tokio::sync::oneshot::channel();
        shutdown.spawn_work(migrate_until_done(store.clone(), shutdown.work(), looked));
        let grace = settings.api.shutdown_grace();
        // The kind registry: read now and every `api.kinds_refresh_ms`, the built-in kinds
        // seeded first.
        let kinds = Arc::new(Kinds::new(&settings));
        shutdown.spawn_background(kinds.clone().keep_fresh(
            store.clone(),
            Duration::from_millis(settings.api.kinds_refresh_ms.max(100)),
            shutdown.background(),
        ));
        let max_body = settings.api.max_body_bytes;
        let tutorial = routes::tutorial::Tutorial::new(&settings);
        // Upkeep (due tasks, lapsed leases, expired ids), as every worker runs it: HTTP
        // workers run none, so without this their lapsed leases would wait for a Rust
        // worker. Atomic, bounded steps: any number of processes may run it.
        if settings.api.upkeep_ms > 0 {
            shutdown.spawn_background(errand_core::upkeep::run(
                store.clone(),
                Duration::from_millis(settings.api.upkeep_ms),
                shutdown.background(),
                crate::metrics::recovered,
            ));
        }
        let redoc = crate::redoc::RedocAssets::load(&settings.api.redoc_js_path);
        let events = Events::start(
            settings.redis.clients()?,
            store.layout().events_channel(),
            &shutdown,
        );
        let workflow_events = Events::start(
            settings.redis.clients()?,
            store.layout().workflow_events_channel(),
            &shutdown,
        );
        let (advancer, advancing) =
            errand_core::advance::Advancer::start(store.clone(), shutdown.background());
        shutdown.spawn_background(advancing);
        let keys = Arc::new(access::Keys::new(&settings.api.api_keys));
        let ui = crate::ui::Ui::new(&settings);
        let rate_limiter = access::RateLimiter::new(&settings.api.rate_limit).map(Arc::new);
        // Histogram samples wait in buffers until drained: drain them even when nobody
        // scrapes, so an unscraped api does not grow.
        shutdown.spawn_background(errand_core::prometheus::upkeep(
            crate::metrics::install(),
            shutdown.background(),
        ));
        let shared = AppState {
            store,
            kinds,
            settings,
            events,
            workflow_events,
            advancer,
            keys,
            rate_limiter,
            stopping: shutdown.work(),
        };

        let server = HttpServer::new(move || {
            // Runs on each HTTP worker thread, in its runtime: the connection opened here is
            // used (and reconnects) there only.
            let store = match connector.open() {
                Ok(conn) => TaskStore::new(conn, layout.clone()).with_retention(retention),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open this worker thread's Redis connection; sharing the main one");
                    shared.store.clone()
                }
            };
            let state = web::Data::new(AppState {
                store,
                ..shared.clone()
            });
            App::new()
                .wrap(from_fn(crate::retry_after::retry_after))
                .wrap(from_fn(access::guard))
                .wrap(TracingLogger::default())
                .wrap(from_fn(crate::metrics::track))
                .app_data(state)
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
                .service(routes::kinds::delete_kind)
                .service(routes::worker::register)
                .service(routes::worker::lease)
                .service(routes::worker::heartbeat)
                .service(routes::worker::complete)
                .service(routes::worker::complete_one)
                .service(routes::docs::openapi_full)
                .service(routes::docs::openapi_product)
                .service(routes::batch::submit_batch)
                .service(routes::tasks::submit_task)
                .service(routes::tasks::list_tasks)
                .service(routes::tasks::get_task)
                .service(routes::watch::task_events)
                .service(routes::workflows::submit_workflow)
                .service(routes::workflows::list_workflows)
                .service(routes::workflows::get_workflow)
                .service(routes::workflows::cancel_workflow)
                .service(routes::workflows::workflow_events)
                .service(routes::control::cancel_task)
                .service(routes::control::retry_task)
                .service(routes::queues::list_queues)
                .service(routes::queues::list_workers)
                .service(routes::queues::pause_queue)
                .service(routes::queues::resume_queue)
                .service(routes::limits::get_limits)
                .service(routes::bulk::start_bulk)
                .service(routes::bulk::get_bulk)
                .service(routes::limits::set_limits)
                .configure(|cfg| tutorial.configure(cfg))
                .service(routes::schedules::create_schedule)
                .service(routes::schedules::list_schedules)
                .service(routes::schedules::get_schedule)
                .service(routes::schedules::delete_schedule)
                .service(routes::schedules::enable_schedule)
                .service(routes::schedules::disable_schedule)
                .service(web::redirect("/docs", "/docs/"))
                // The documents change with the registry, so they are served by
                // `routes::docs`; Swagger UI is only pointed at them.
                .service(SwaggerUi::new("/docs/{_:.*}").config(
                    utoipa_swagger_ui::Config::new(["/openapi.json", openapi::PRODUCT_PATH]),
                ))
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
        // The stop is errand's (`run_until_stopped`), signals included; actix closes the
        // connections still open once the grace is over.
        .disable_signals()
        .shutdown_timeout(grace.as_secs())
        .run();
        Ok(Self {
            port,
            server,
            shutdown,
            grace,
            first_look,
        })
    }

    /// Stops on SIGTERM/SIGINT (the binary does this; in-process tests do not).
    pub fn listen_for_signals(&self) {
        self.shutdown.listen_for_signals();
    }

    /// The process's stop, to request it from elsewhere ([`Shutdown::trigger`]).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The port the listener is bound to (the one the OS picked for port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the stop is requested (SIGTERM/SIGINT once listened for), then stops in
    /// the [`Shutdown`]'s phases: 1. new connections are refused, long-polls answer with the
    /// record as it is and event streams end; 2. other requests in flight get
    /// `api.shutdown_grace_secs` to finish; 3. connections still open are closed; 4. the
    /// background loops are joined. A second signal cuts 2 and 4 short.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            server,
            shutdown,
            grace,
            first_look,
            ..
        } = self;
        // The migration looks first (a few ms with Redis up), so no request writes a key
        // before it has seen which layout this Redis holds (a fresh Redis and an old one
        // share some key names). Bounded, so an unreachable Redis does not keep the api
        // from answering (503s meanwhile).
        let _ = tokio::time::timeout(FIRST_LOOK, async {
            tokio::select! {
                _ = first_look => {}
                () = shutdown.requested() => {}
            }
        })
        .await;
        let handle = server.handle();
        let mut server = server;
        let mut served = None;
        tokio::select! {
            r = &mut server => {
                // Ended on its own: nothing left to drain.
                served = Some(r);
                shutdown.trigger();
            }
            () = shutdown.requested() => {}
        }
        let began = std::time::Instant::now();
        let ended = served.is_some();
        let drained = async {
            if !ended {
                tracing::info!(
                    grace_secs = grace.as_secs(),
                    "stopping: no new connections; long-polls and event streams end now"
                );
                // Graceful: refuse new connections, wait for those open (actix's own
                // `shutdown_timeout` is the grace), then the server's future ends. The
                // server's future carries the stop out, so it is polled alongside.
                let ((), r) = futures::join!(handle.stop(true), &mut server);
                served = Some(r);
            }
        };
        let stopped = shutdown
            .run(grace, drained, |why| {
                tracing::warn!(?why, "requests still in flight; closing their connections");
            })
            .await;
        tracing::info!(
            stop_ms = began.elapsed().as_millis() as u64,
            abandoned = stopped.abandoned,
            forced = stopped.forced,
            "errand-api stopped"
        );
        // Forced (or over the grace): the server's own stop is not waited for; its worker
        // threads end with the process.
        served.unwrap_or(Ok(()))
    }
}

/// How long the background loops get to end once asked: a Redis call in flight and a margin.
const JOIN_DEADLINE: Duration = Duration::from_secs(5);

/// The longest serving waits for the migration's first look at Redis.
const FIRST_LOOK: Duration = Duration::from_secs(2);

/// Runs the layout migration until done or `stop`, retried while Redis is unreachable
/// ([`errand_core::until_ready`]); `looked` is told once the first attempt is over, done or
/// not.
async fn migrate_until_done(
    store: TaskStore,
    stop: CancellationToken,
    looked: tokio::sync::oneshot::Sender<()>,
) {
    let store = &store;
    let mut looked = Some(looked);
    errand_core::until_ready::retry("layout migration", stop.cancelled(), move || {
        let looked = looked.take();
        async move {
            let migrated = store.migrate().await;
            if let Some(l) = looked {
                let _ = l.send(());
            }
            migrated
        }
    })
    .await;
}
