//! Logging in with an API key, and out.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use super::{CsrfForm, Params, param};
use crate::ui::guard::{Post, Read};
use crate::ui::{Auth, UiError, see_other};

fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.contains("//") && !n.contains('\\') => n.to_owned(),
        _ => "/ui".to_owned(),
    }
}

fn login_page(next: &str, failed: bool) -> HttpResponse {
    let markup = super::super::bare_page(
        "Log in · errand",
        html! {
            main #main.login {
                h1 { "errand dashboard" }
                form method="post" action="/ui/login" {
                    @if failed {
                        p.notice.bad role="alert" { "That key is not one of this server's API keys." }
                    }
                    label for="key" { "API key" }
                    input #key type="password" name="key" required autocomplete="current-password" autofocus;
                    input type="hidden" name="next" value=(next);
                    button type="submit" { "Log in" }
                    p.muted { "Any configured key works; its scope (read, submit, admin) decides what you can change." }
                }
            }
        },
    );
    let status = if failed {
        actix_web::http::StatusCode::UNAUTHORIZED
    } else {
        actix_web::http::StatusCode::OK
    };
    super::super::html_response(status).body(markup.into_string())
}

pub(in crate::ui) async fn login_form(
    auth: web::Data<Auth>,
    req: HttpRequest,
    q: Params,
) -> HttpResponse {
    let next = safe_next(param(&q, "next"));
    if !auth.keyed() || auth.session(&req, Utc::now().timestamp()).is_some() {
        return see_other(&next);
    }
    login_page(&next, false)
}

#[derive(Deserialize)]
pub(in crate::ui) struct LoginForm {
    key: String,
    next: Option<String>,
}

pub(in crate::ui) async fn login(
    auth: web::Data<Auth>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let next = safe_next(form.next.as_deref());
    match auth.login(&form.key, Utc::now().timestamp()) {
        Some(s) => {
            tracing::info!(key_id = %s.key_id, scope = s.scope.as_str(), "dashboard login");
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, next))
                .insert_header((
                    header::SET_COOKIE,
                    auth.cookie(&s, super::super::secure(&req)),
                ))
                .finish()
        }
        None => {
            tracing::warn!("dashboard login with a key that matches none");
            login_page(&next, true)
        }
    }
}

pub(in crate::ui) async fn logout(
    req: HttpRequest,
    _: Post<CsrfForm, Read>,
) -> Result<HttpResponse, UiError> {
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/login"))
        .insert_header((
            header::SET_COOKIE,
            Auth::clear_cookie(super::super::secure(&req)),
        ))
        .finish())
}
