//! The operator's dashboard, served by errand-api itself under `/ui` (docs/dashboard.md):
//! overview with history charts, tasks (filters, paging, search by id, a task page with
//! live progress, cancel / retry, bulk actions), queues (pause / resume), workflows (each
//! one's graph, drawn on the server as SVG, with its steps' states), workers, kinds
//! (the registry: schemas, live workers, queues) and schedules. HTML is rendered on the server with maud; the few lines of JavaScript
//! (`static/app.js`) only make it live (progress over SSE, refreshing the overview), so
//! every page also works without it. Every asset is embedded in the binary: the dashboard
//! works with no network.
//!
//! It reads and changes state through the same store calls as the API, so it can do
//! nothing the API cannot. Access (`auth.rs`): open without API keys, like the API;
//! with keys, a login form and a signed session cookie, with the key's scope deciding which
//! buttons exist and which posts are accepted, and a CSRF token on every form.

mod auth;
mod charts;
mod guard;
mod pages;

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{StatusCode, header},
    web,
};
use errand_core::{Settings, StoreError, settings::Scope};
use maud::{DOCTYPE, Markup, html};

pub(crate) use auth::Auth;
use auth::Session;
use guard::view_route;

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");

/// Scripts and styles from this origin only; no inline script or style attribute anywhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes and its session secret.
#[derive(Clone)]
pub(crate) struct Ui(web::Data<Auth>);

impl Ui {
    pub(crate) fn new(settings: &Settings) -> Self {
        Self(web::Data::new(Auth::new(
            &settings.api.api_keys,
            &settings.redis.key_prefix,
        )))
    }

    pub(crate) fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.0.clone())
            .route("/", web::get().to(pages::landing))
            .route("/ui", view_route(pages::overview))
            .service(web::redirect("/ui/", "/ui"))
            .route("/ui/static/app.css", web::get().to(css))
            .route("/ui/static/app.js", web::get().to(js))
            .route("/ui/login", web::get().to(pages::login_form))
            .route("/ui/login", web::post().to(pages::login))
            .route("/ui/logout", web::post().to(pages::logout))
            .route("/ui/tasks", view_route(pages::tasks))
            .route("/ui/tasks/bulk", web::post().to(pages::bulk))
            .route("/ui/tasks/{id}", view_route(pages::task))
            .route("/ui/tasks/{id}/events", web::get().to(pages::task_events))
            .route(
                "/ui/tasks/{id}/{action}",
                web::post().to(pages::task_action),
            )
            .route("/ui/queues", view_route(pages::queues))
            .route("/ui/queues/bulk", web::post().to(pages::queue_bulk))
            .route(
                "/ui/queues/{queue}/{action}",
                web::post().to(pages::queue_action),
            )
            .route("/ui/workflows", view_route(pages::workflows))
            .route("/ui/workflows/{id}", view_route(pages::workflow))
            .route(
                "/ui/workflows/{id}/cancel",
                web::post().to(pages::workflow_cancel),
            )
            .route("/ui/workers", view_route(pages::workers))
            .route("/ui/kinds", view_route(pages::kinds))
            .route("/ui/schedules", view_route(pages::schedules))
            .route(
                "/ui/schedules/{id}/{action}",
                web::post().to(pages::schedule_action),
            );
    }
}

async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

/// What a dashboard request runs with (a page view takes it as an argument, `guard.rs`): its session, the CSRF token for its forms, and the
/// cookie to set when the session was just handed out.
pub(crate) struct Ctx {
    session: Session,
    csrf: String,
    keyed: bool,
    set_cookie: Option<String>,
}

impl Ctx {
    /// A form post: a valid session whose scope covers `needs`, and its CSRF token.
    pub(crate) fn act(
        auth: &Auth,
        req: &HttpRequest,
        csrf: &str,
        needs: Scope,
    ) -> Result<Self, UiError> {
        let now = chrono::Utc::now().timestamp();
        let session = auth.session(req, now).ok_or(UiError::Csrf)?;
        if !auth.csrf_ok(&session, csrf) {
            return Err(UiError::Csrf);
        }
        if session.scope < needs {
            return Err(UiError::Forbidden(format!(
                "this key's scope is `{}`; this action needs `{}`",
                session.scope.as_str(),
                needs.as_str()
            )));
        }
        Ok(Self::of(auth, session, None))
    }

    fn of(auth: &Auth, session: Session, set_cookie: Option<String>) -> Self {
        Self {
            csrf: auth.csrf(&session),
            keyed: auth.keyed(),
            session,
            set_cookie,
        }
    }

    pub(crate) fn can(&self, scope: Scope) -> bool {
        self.session.scope.allows(scope)
    }

    /// The hidden field every changing form carries.
    pub(crate) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    /// A full page: navigation, `body`, and the security headers.
    pub(crate) fn page(
        &self,
        active: &str,
        title: &str,
        main_attrs: Main,
        body: Markup,
    ) -> HttpResponse {
        let nav = [
            ("overview", "/ui", "Overview"),
            ("tasks", "/ui/tasks", "Tasks"),
            ("queues", "/ui/queues", "Queues"),
            ("workflows", "/ui/workflows", "Workflows"),
            ("workers", "/ui/workers", "Workers"),
            ("kinds", "/ui/kinds", "Kinds"),
            ("schedules", "/ui/schedules", "Schedules"),
        ];
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · errand" }
                    link rel="stylesheet" href="/ui/static/app.css";
                    script src="/ui/static/app.js" defer {}
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        a.brand href="/ui" { "errand" }
                        nav aria-label="Dashboard" {
                            ul {
                                @for (id, href, label) in nav {
                                    li { a href=(href) aria-current=[(id == active).then_some("page")] { (label) } }
                                }
                            }
                        }
                        @if self.keyed {
                            form.logout method="post" action="/ui/logout" {
                                (self.csrf_field())
                                span.who title="the key's id and scope" {
                                    "key " (self.session.key_id) " · " (self.session.scope.as_str())
                                }
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                    main #main tabindex="-1" data-refresh=[main_attrs.refresh] data-task=[main_attrs.task.as_deref()]
                        data-state=[main_attrs.state.as_deref()] {
                        (body)
                    }
                }
            }
        };
        let mut res = html_response(StatusCode::OK);
        if let Some(c) = &self.set_cookie {
            res.insert_header((header::SET_COOKIE, c.clone()));
        }
        res.body(markup.into_string())
    }
}

/// Attributes of `<main>` the script reads.
#[derive(Default)]
pub(crate) struct Main {
    /// Reload the page's content every this many seconds.
    pub refresh: Option<u32>,
    /// The task page's task and its state (live progress).
    pub task: Option<String>,
    pub state: Option<String>,
}

fn html_response(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    res
}

pub(crate) fn secure(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// A 303 to `to` (after a form post, so reloading does not post again).
pub(crate) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// Why a dashboard request failed, as a page.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UiError {
    /// 503 + Retry-After (`api.retry_after_secs`, written by the `retry_after` middleware).
    #[error("Redis is unavailable ({0}); this page will work again once it is back")]
    Unavailable(&'static str),
    #[error("internal error")]
    Internal(#[source] StoreError),
    #[error("{0}")]
    NotFound(String),
    #[error("{field}: {detail}")]
    BadRequest { field: &'static str, detail: String },
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "this form has expired or did not come from this dashboard (CSRF check); reload the page and try again"
    )]
    Csrf,
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        match e.unavailability() {
            Some(cause) => Self::Unavailable(cause.describe()),
            None => Self::Internal(e),
        }
    }
}

impl UiError {
    /// Whether the page carries `Retry-After` (written by the `retry_after` middleware).
    pub(crate) fn retry_after(&self) -> Option<crate::error::RetryAfter> {
        matches!(self, Self::Unavailable(_)).then_some(crate::error::RetryAfter::Configured)
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) | Self::Csrf => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(e) = self {
            tracing::error!(error = ?e, "dashboard: internal error");
        }
        let status = self.status_code();
        let mut res = html_response(status);
        let markup = bare_page(
            &format!("{} · errand", status.as_u16()),
            html! {
                main #main.error {
                    h1 { (status.canonical_reason().unwrap_or("Error")) }
                    p.notice.bad role="alert" { (self.to_string()) }
                    p { a href="/ui" { "Back to the dashboard" } }
                }
            },
        );
        res.body(markup.into_string())
    }
}

/// A page outside the dashboard's navigation (the landing page, the login form, an error):
/// the shared head and stylesheet around `main`.
pub(crate) fn bare_page(title: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/ui/static/app.css";
            }
            body { (main) }
        }
    }
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
