//! The dashboard's guards, as extractors its handlers take: [`Ctx`] for a page view (a
//! session, or a redirect to the login form) and [`Post`] for a form post (a session whose
//! scope covers the action, and the form's CSRF token).

use std::{marker::PhantomData, ops::Deref};

use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError,
    body::MessageBody,
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::StatusCode,
    middleware::Next,
    web,
};
use errand_core::settings::Scope;
use futures::future::{LocalBoxFuture, Ready, ready};
use serde::de::DeserializeOwned;

use super::{Auth, Ctx, Session, secure, see_other};

/// A page view without a session while keys are configured: where the login form is.
#[derive(Debug, thiserror::Error)]
#[error("not logged in: see {0}")]
pub(crate) struct ToLogin(String);

impl ResponseError for ToLogin {
    fn status_code(&self) -> StatusCode {
        StatusCode::SEE_OTHER
    }

    fn error_response(&self) -> HttpResponse {
        see_other(&self.0)
    }
}

/// A page view: the session, or (with keys, none valid) a redirect to the login form.
/// Without keys a session is handed out here, for the CSRF token of the page's forms.
impl FromRequest for Ctx {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            web::Data::<Auth>::extract(req)
                .into_inner()
                .and_then(|auth| Ok(view(&auth, req)?)),
        )
    }
}

fn view(auth: &Auth, req: &HttpRequest) -> Result<Ctx, ToLogin> {
    let now = chrono::Utc::now().timestamp();
    if let Some(session) = auth.session(req, now) {
        return Ok(Ctx::of(auth, session, None));
    }
    if auth.keyed() {
        let next = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/ui");
        return Err(ToLogin(format!("/ui/login?next={}", super::enc(next))));
    }
    let session = Session::open(now);
    let cookie = auth.cookie(&session, secure(req));
    Ok(Ctx::of(auth, session, Some(cookie)))
}

/// A page view's route: its redirect to the login form leaves as the plain 303 it is. An
/// extractor can only refuse with an error, and the request log and traces would count
/// every signed-out visit as a failed request.
pub(crate) fn view_route<F, Args>(handler: F) -> actix_web::Route
where
    F: actix_web::Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::get()
        .to(handler)
        .wrap(actix_web::middleware::from_fn(login_redirect))
}

async fn login_redirect(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let to = res
        .response()
        .error()
        .and_then(|e| e.as_error::<ToLogin>())
        .map(|l| l.0.clone());
    Ok(match to {
        Some(to) => {
            let (req, _) = res.into_parts();
            ServiceResponse::new(req, see_other(&to)).map_into_right_body()
        }
        None => res.map_into_left_body(),
    })
}

/// The scope a form post needs, named in its handler's signature.
pub(crate) trait Needs {
    const SCOPE: Scope;
}

/// Needs `read`: any session (logging out).
pub(crate) struct Read;
/// Needs `submit`: changing tasks and workflows.
pub(crate) struct Submit;
/// Needs `admin`: queues and schedules.
pub(crate) struct Admin;

impl Needs for Read {
    const SCOPE: Scope = Scope::Read;
}
impl Needs for Submit {
    const SCOPE: Scope = Scope::Submit;
}
impl Needs for Admin {
    const SCOPE: Scope = Scope::Admin;
}

/// A form that carries the session's CSRF token.
pub(crate) trait CsrfToken {
    fn csrf(&self) -> &str;
}

/// A form post of `F` by a valid session whose scope covers `S`, with its CSRF token
/// checked (403 otherwise). The form is read first, so a malformed one is a 400 as before.
pub(crate) struct Post<F, S> {
    form: F,
    scope: PhantomData<S>,
}

impl<F, S> Deref for Post<F, S> {
    type Target = F;

    fn deref(&self) -> &F {
        &self.form
    }
}

impl<F, S> FromRequest for Post<F, S>
where
    F: DeserializeOwned + CsrfToken + 'static,
    S: Needs + 'static,
{
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let auth = web::Data::<Auth>::extract(req).into_inner();
        let form = web::Form::<F>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let auth = auth?;
            let form = form.await?.into_inner();
            Ctx::act(&auth, &req, form.csrf(), S::SCOPE)?;
            Ok(Self {
                form,
                scope: PhantomData,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{App, http::header, test};
    use errand_core::settings::ApiKey;

    use super::*;

    async fn page(_: Ctx) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    #[actix_web::test]
    async fn a_signed_out_view_is_a_plain_redirect_to_the_login_form_not_an_error() {
        let auth = Auth::new(&[ApiKey::new(Scope::Read, "reader-key-000000")], "errand");
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(auth))
                .route("/ui/tasks", view_route(page)),
        )
        .await;
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/ui/tasks?state=failed")
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            res.headers().get(header::LOCATION).unwrap(),
            "/ui/login?next=/ui/tasks%3Fstate%3Dfailed"
        );
        assert!(
            res.response().error().is_none(),
            "the request log would count it as a failure"
        );
    }
}
