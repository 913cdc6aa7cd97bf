//! ReDoc at `/redoc`, served entirely by errand-api: utoipa-redoc's stock page loads ReDoc's
//! script from a CDN, which fails offline and behind egress filters, so the page here loads
//! the bundle that `scripts/fetch-redoc.sh` put at `api.redoc_js_path` from
//! `/redoc/redoc.standalone.js`, and carries the OpenAPI document inline.
//!
//! The bundle is read once at startup (about 1 MB, kept in memory). When it is missing,
//! `/redoc` answers 503 with a page saying how to install it, so a deployment without it
//! shows why its docs are not rendered instead of a blank page, and monitoring can tell.

use std::path::Path;

use crate::{error::ApiError, state::AppState};
use actix_web::{HttpResponse, http::header, web};

/// Where the page loads ReDoc's script from.
pub(crate) const BUNDLE_ROUTE: &str = "/redoc/redoc.standalone.js";

/// The page when the bundle is present. `$spec` and `$config` are filled in by utoipa-redoc.
/// No fonts or images from elsewhere: ReDoc falls back to the browser's sans-serif, and the
/// Content-Security-Policy keeps the bundle's one outside image (the Redocly logo in the
/// side menu, hidden by ReDoc when it fails to load) from being requested at all.
const PAGE_TEMPLATE: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <title>errand API reference</title>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <style>
      body {
        margin: 0;
        padding: 0;
      }
    </style>
  </head>
  <body>
    <div id="redoc-container"></div>
    <script src="/redoc/redoc.standalone.js"></script>
    <script>
      Redoc.init($spec, $config, document.getElementById("redoc-container"));
    </script>
  </body>
</html>
"#;

/// Everything the page needs comes from this origin; ReDoc builds its search worker from a
/// blob and injects its styles inline.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
    style-src 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    worker-src blob:; connect-src 'self'; base-uri 'none'; form-action 'none'";

/// What `/redoc` serves, decided once at startup.
#[derive(Clone)]
pub(crate) struct RedocAssets(web::Data<Assets>);

enum Assets {
    Ready { bundle: web::Bytes },
    Missing { page: String },
}

impl RedocAssets {
    /// Reads the bundle at `bundle_path`; when it cannot be read (or is empty) logs a
    /// warning and serves the instructions page instead. Never fails: the rest of the API
    /// must not depend on a documentation asset.
    pub(crate) fn load(bundle_path: &Path) -> Self {
        let assets = match std::fs::read(bundle_path) {
            Ok(bytes) if !bytes.is_empty() => {
                tracing::debug!(path = %bundle_path.display(), bytes = bytes.len(), "ReDoc bundle loaded");
                Assets::Ready {
                    bundle: web::Bytes::from(bytes),
                }
            }
            read => {
                let why = match read {
                    Ok(_) => "the file is empty".to_owned(),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(
                    path = %bundle_path.display(),
                    error = %why,
                    "ReDoc's script is not installed, so /redoc shows install instructions; \
                     run `just redoc` (scripts/fetch-redoc.sh) and restart errand-api"
                );
                Assets::Missing {
                    page: missing_page(bundle_path, &why),
                }
            }
        };
        Self(web::Data::new(assets))
    }

    /// `/redoc` (and `/redoc/` → `/redoc`) and the bundle route.
    pub(crate) fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            web::resource("/redoc")
                .app_data(self.0.clone())
                .route(web::get().to(page)),
        )
        .service(
            web::resource(BUNDLE_ROUTE)
                .app_data(self.0.clone())
                .route(web::get().to(bundle)),
        )
        .service(web::redirect("/redoc/", "/redoc"));
    }
}

/// The page embeds the document of the kinds registered now, so it is rendered per visit
/// (the document itself is built once per registry change).
async fn page(
    assets: web::Data<Assets>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(match &**assets {
        Assets::Ready { .. } => {
            let docs = crate::openapi::documents(&state).await?;
            HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_CSP))
                .body(
                    utoipa_redoc::Redoc::new(docs.full.clone())
                        .custom_html(PAGE_TEMPLATE)
                        .to_html(),
                )
        }
        Assets::Missing { page } => HttpResponse::ServiceUnavailable()
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(page.clone()),
    })
}

async fn bundle(assets: web::Data<Assets>) -> Result<HttpResponse, ApiError> {
    match &**assets {
        // An hour: long enough that reloading the docs does not re-send a megabyte, short
        // enough that a ReDoc upgrade reaches browsers the same day.
        Assets::Ready { bundle, .. } => Ok(HttpResponse::Ok()
            .content_type("text/javascript; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(bundle.clone())),
        Assets::Missing { .. } => Err(ApiError::RouteNotFound(format!(
            "GET {BUNDLE_ROUTE}: ReDoc's script is not installed on this server \
             (run `just redoc` and restart errand-api)"
        ))),
    }
}

fn missing_page(bundle_path: &Path, why: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <title>ReDoc is not installed · errand</title>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <style>
      body {{ font-family: sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
      code, pre {{ background: #f3f3f3; padding: 0.1rem 0.3rem; }}
      pre {{ padding: 0.6rem; }}
    </style>
  </head>
  <body>
    <h1>ReDoc's script is not installed</h1>
    <p>This page shows errand's API reference with ReDoc, whose script errand-api serves
      itself (from <code>{BUNDLE_ROUTE}</code>) so that it works without internet access.
      It could not read that script from <code>{path}</code> when it started:
      <em>{why}</em>.</p>
    <p>To install it, run this in the repository, then restart errand-api:</p>
    <pre>just redoc            # or: scripts/fetch-redoc.sh</pre>
    <p><code>just up</code>, <code>just build</code> and <code>just test</code> run it for you.
      To keep the script elsewhere, set <code>api.redoc_js_path</code>
      (<code>ERRAND__API__REDOC_JS_PATH</code>); a relative path is resolved against the
      config directory's parent.</p>
    <p>Meanwhile the same document is in Swagger UI at <a href="/docs/">/docs</a> and as
      OpenAPI JSON at <a href="/openapi.json">/openapi.json</a>.</p>
  </body>
</html>
"#,
        path = escape(&bundle_path.display().to_string()),
        why = escape(why),
    )
}

/// The path and the OS error come from configuration and the filesystem; neither may
/// become markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_page_does_not_turn_the_path_into_markup() {
        let html = missing_page(Path::new("/tmp/<script>x.js"), "No such file \"x\"");
        assert!(html.contains("/tmp/&lt;script&gt;x.js"), "{html}");
        assert!(html.contains("No such file &quot;x&quot;"));
        assert!(!html.contains("<script>"));
    }
}
