//! `/redoc` works without internet access: the page loads ReDoc's script from this server,
//! and without the script it says how to install it instead of failing.
//!
//! The tests write their own script file and point `api.redoc_js_path` at it, so they do
//! not depend on `scripts/fetch-redoc.sh` having run; what they check is what errand does
//! with whatever file is configured.

use std::path::PathBuf;

use tempfile::TempDir;

use crate::helpers::{TestApp, problem, spawn_app, spawn_app_with};

const BUNDLE_ROUTE: &str = "/redoc/redoc.standalone.js";

/// A script file of ReDoc's order of size (hundreds of KB) in a fresh directory; it is
/// served byte for byte, so its content only has to be recognisable.
pub(crate) fn stand_in_bundle() -> (TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redoc.standalone.js");
    let mut js = String::from("window.Redoc = { init: function (spec, options, element) {} };\n");
    while js.len() < 300_000 {
        js.push_str("/* padding: the real bundle is about 1.1 MB of minified JavaScript */\n");
    }
    std::fs::write(&path, &js).unwrap();
    (dir, path, js.into_bytes())
}

async fn app_with_bundle_at(path: PathBuf) -> TestApp {
    spawn_app_with(move |s| s.api.redoc_js_path = path).await
}

/// Every `attr="…"` value in the page's markup. The embedded spec is JSON (`"key":"value"`),
/// so it never matches `src="` or `href="`.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            &rest[..rest.find('"').expect("attribute closes")]
        })
        .collect()
}

#[tokio::test]
async fn redoc_page_loads_its_script_from_this_server_only() {
    let (_dir, path, _) = stand_in_bundle();
    let app = app_with_bundle_at(path).await;

    let res = app.get("/redoc").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = res.text().await.unwrap();

    assert_eq!(attribute_values(&html, "src"), vec![BUNDLE_ROUTE]);
    for attr in ["src", "href"] {
        for value in attribute_values(&html, attr) {
            assert!(
                !value.starts_with("http://") && !value.starts_with("https://"),
                "{attr}=\"{value}\" reaches outside the server"
            );
        }
    }
    assert!(!html.contains("cdn.redoc.ly"));
    assert!(!html.contains("fonts.googleapis.com"));
    assert!(html.contains("Redoc.init("), "the page starts ReDoc");
    assert!(html.contains(r#""openapi":"3.1"#), "the spec is inline");
}

#[tokio::test]
async fn the_configured_script_is_served_as_javascript_byte_for_byte() {
    let (_dir, path, written) = stand_in_bundle();
    let app = app_with_bundle_at(path).await;

    let res = app.get(BUNDLE_ROUTE).await;
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/javascript")
            || content_type.starts_with("application/javascript"),
        "{content_type}"
    );
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let body = res.bytes().await.unwrap();
    assert!(body.len() > 100_000, "served {} bytes", body.len());
    assert!(body[..] == written[..], "served a different file");
}

#[tokio::test]
async fn without_the_script_redoc_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vendor").join("redoc.standalone.js");
    let app = app_with_bundle_at(path.clone()).await;

    let res = app.get("/redoc").await;
    assert_eq!(res.status(), 503);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("just redoc"), "{html}");
    assert!(html.contains("scripts/fetch-redoc.sh"), "{html}");
    assert!(html.contains("api.redoc_js_path"), "{html}");
    assert!(
        html.contains(&path.display().to_string()),
        "names where it looked"
    );
    assert!(!html.contains("<script"), "no script to fail");
    assert!(html.contains(r#"href="/docs/""#), "points to Swagger UI");

    let body = problem(app.get(BUNDLE_ROUTE).await, 404).await;
    assert!(
        body["detail"].as_str().unwrap().contains("just redoc"),
        "{body}"
    );

    // The rest of the API, its other docs included, is unaffected.
    assert_eq!(app.get("/openapi.json").await.status(), 200);
    assert_eq!(app.get("/docs/").await.status(), 200);
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn an_empty_script_file_counts_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redoc.standalone.js");
    std::fs::write(&path, b"").unwrap();
    let app = app_with_bundle_at(path).await;

    let res = app.get("/redoc").await;
    assert_eq!(res.status(), 503);
    assert!(res.text().await.unwrap().contains("the file is empty"));
    problem(app.get(BUNDLE_ROUTE).await, 404).await;
}

#[tokio::test]
async fn redoc_with_a_trailing_slash_redirects_to_the_page() {
    let app = spawn_app().await;
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/redoc/", app.base))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(res.headers()["location"], "/redoc");
}
