//! The dashboard over plain HTTP (the browser suite in crates/api/ui-tests drives it in
//! Chromium): the login, the session cookie, CSRF and scopes on its forms.

use errand_core::settings::{ApiKey, Scope};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const ADMIN: &str = "admin-key-0123456789";
const READER: &str = "reader-key-0123456789";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn keyed() -> TestApp {
    spawn_app_with(|s| {
        s.api.api_keys = vec![
            ApiKey::new(Scope::Admin, ADMIN),
            ApiKey::new(Scope::Read, READER),
        ];
    })
    .await
}

/// Logs in with `key`; returns the `name=value` of the session cookie.
async fn login(app: &TestApp, key: &str) -> String {
    let res = no_redirects()
        .post(format!("{}/ui/login", app.base))
        .form(&[("key", key), ("next", "/ui/queues")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/ui/queues");
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains(key), "the key is not in the cookie: {set}");
    set.split(';').next().unwrap().to_owned()
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> (u16, String) {
    let res = no_redirects()
        .get(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 64].to_owned()
}

async fn paused(app: &TestApp, queue: &str) -> bool {
    let key = format!("{}:{{{queue}}}:paused", app.prefix);
    let n: u32 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut app.redis.conn().await)
        .await
        .unwrap();
    n == 1
}

#[tokio::test]
async fn with_keys_the_dashboard_asks_for_one_and_a_wrong_key_opens_nothing() {
    let app = keyed().await;
    let res = no_redirects()
        .get(format!("{}/ui/tasks?state=failed", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/ui/login?next=/ui/tasks%3Fstate%3Dfailed"
    );
    let (status, html) = page(&app, "", "/ui/login").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("type=\"password\"") && html.contains("method=\"post\""),
        "{html}"
    );

    let res = no_redirects()
        .post(format!("{}/ui/login", app.base))
        .form(&[("key", "not-a-key-0123456789")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("set-cookie").is_none());

    let cookie = login(&app, ADMIN).await;
    let (status, html) = page(&app, &cookie, "/ui").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Overview"));
    // A tampered cookie is no session.
    let forged = format!(
        "{}0",
        cookie.trim_end_matches(|c: char| c.is_ascii_hexdigit())
    );
    assert_eq!(page(&app, &forged, "/ui").await.0, 303);
    // The SSE route needs a session too.
    let id = "01a23404-eb5a-70c2-9cc4-1fad1e3eddde";
    assert_eq!(
        page(&app, "", &format!("/ui/tasks/{id}/events")).await.0,
        403
    );
    // An open redirect is not possible through `next`.
    let res = no_redirects()
        .post(format!("{}/ui/login", app.base))
        .form(&[("key", ADMIN), ("next", "//evil.example/ui")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/ui");
}

#[tokio::test]
async fn forms_need_the_session_s_csrf_token_and_a_wide_enough_scope() {
    let app = keyed().await;
    let admin = login(&app, ADMIN).await;
    let (_, html) = page(&app, &admin, "/ui/queues").await;
    let token = csrf_of(&html);
    let post = |cookie: String, body: Vec<(&'static str, String)>| {
        let url = format!("{}/ui/queues/default/pause", app.base);
        async move {
            no_redirects()
                .post(url)
                .header("cookie", cookie)
                .form(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(admin.clone(), vec![]).await, 403, "no token");
    assert_eq!(
        post(admin.clone(), vec![("csrf", "0".repeat(64))]).await,
        403,
        "a wrong token"
    );
    assert_eq!(
        post(String::new(), vec![("csrf", token.clone())]).await,
        403,
        "no cookie"
    );
    assert!(!paused(&app, "default").await);
    assert_eq!(post(admin.clone(), vec![("csrf", token)]).await, 303);
    assert!(paused(&app, "default").await, "the form paused the queue");

    // A read key sees the queue but no button, and its own token does not let it act.
    let reader = login(&app, READER).await;
    let (status, html) = page(&app, &reader, "/ui/queues").await;
    assert_eq!(status, 200);
    assert!(
        !html.contains("Resume default"),
        "no action button for read scope"
    );
    let (_, html) = page(&app, &reader, "/ui/tasks").await;
    assert!(!html.contains("action=\"/ui/tasks/bulk\""));
    let (_, html) = page(&app, &reader, "/ui").await;
    let token = csrf_of(&html);
    let res = no_redirects()
        .post(format!("{}/ui/queues/default/resume", app.base))
        .header("cookie", &reader)
        .form(&[("csrf", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(paused(&app, "default").await);
}

#[tokio::test]
async fn without_keys_the_dashboard_is_open_and_every_page_renders() {
    let app = spawn_app().await;
    let res = app
        .post_task(&json!({"kind": "sleep", "queue": "q1", "payload": {"duration_secs": 5}}))
        .await;
    let id = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = no_redirects()
        .get(format!("{}/ui", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    for path in [
        "/ui/tasks",
        "/ui/queues",
        "/ui/workers",
        "/ui/kinds",
        "/ui/schedules",
        &format!("/ui/tasks/{id}"),
        "/",
    ] {
        let (status, html) = page(&app, &cookie, path).await;
        assert_eq!(status, 200, "{path}: {html}");
    }
    // The kinds page: the seeded built-ins, their schemas, and that no worker runs them.
    let (_, html) = page(&app, &cookie, "/ui/kinds").await;
    assert!(
        html.contains("id=\"kind-sleep\"")
            && html.contains("duration_secs")
            && html.contains("no live worker")
            && html.contains("href=\"/ui/kinds\""),
        "{html}"
    );
    let (_, html) = page(&app, &cookie, "/").await;
    assert!(html.contains("href=\"/ui\""), "/ links the dashboard");
    let (_, html) = page(&app, &cookie, "/ui/tasks?queue=q1&state=queued").await;
    assert!(html.contains(&id), "the filtered list shows the task");
    let (status, _) = page(&app, &cookie, &format!("/ui/tasks?id={id}")).await;
    assert_eq!(status, 303, "search by id opens the task");
    for bad in [
        "/ui/tasks?state=bogus",
        "/ui/tasks?queue=a%20b",
        "/ui/tasks?cursor=x",
    ] {
        let (status, html) = page(&app, &cookie, bad).await;
        assert_eq!(status, 400, "{bad}: {html}");
    }
    for missing in [
        "/ui/tasks/01a23404-eb5a-70c2-9cc4-1fad1e3eddde",
        "/ui/tasks/nope",
    ] {
        assert_eq!(page(&app, &cookie, missing).await.0, 404, "{missing}");
    }

    // Bulk cancel of the filtered selection, with the open session's token.
    let (_, html) = page(&app, &cookie, "/ui/tasks?queue=q1").await;
    let res = no_redirects()
        .post(format!("{}/ui/tasks/bulk", app.base))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("action", "cancel"),
            ("queue", "q1"),
            ("state", "queued"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .contains("Cancelled%201%20task"),
        "{:?}",
        res.headers()
    );
    let r: serde_json::Value = app
        .get(&format!("/v1/tasks/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["state"], "cancelled");
}

#[tokio::test]
async fn static_assets_are_served_by_errand_itself() {
    let app = spawn_app().await;
    for (path, ty) in [
        ("/ui/static/app.css", "text/css"),
        ("/ui/static/app.js", "text/javascript"),
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(ty)
        );
        assert!(res.text().await.unwrap().len() > 500);
    }
}

#[tokio::test]
async fn with_redis_down_pages_are_a_503_with_retry_after() {
    let mut app = spawn_app().await;
    let res = no_redirects()
        .get(format!("{}/ui", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.redis.kill().await;
    for path in [
        "/ui",
        "/ui/tasks",
        "/ui/queues",
        "/ui/workers",
        "/ui/kinds",
        "/ui/schedules",
    ] {
        let res = no_redirects()
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503, "{path}");
        assert!(res.headers().get("retry-after").is_some(), "{path}");
        assert!(
            res.text().await.unwrap().contains("Redis is unavailable"),
            "{path}"
        );
    }
}

/// The workflow pages: the list, and a workflow's graph (a box per step, in columns, an
/// edge per dependency) with each step's state; cancel needs the CSRF token.
#[tokio::test]
async fn a_workflow_page_draws_its_graph_with_each_steps_state() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(format!("{}/v1/workflows", app.base))
        .json(&json!({"id": "drawn", "steps": [
            {"name": "fetch", "kind": "noop", "queue": "uiq"},
            {"name": "split", "kind": "noop", "queue": "uiq", "map": true, "after": ["fetch"], "on_failure": "fail"},
            {"name": "report", "kind": "gather", "queue": "uiq", "after": ["split", {"step": "fetch", "on_failure": "run"}], "on_failure": "fail"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let res = no_redirects()
        .get(format!("{}/ui/workflows", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let list = res.text().await.unwrap();
    assert!(list.contains("href=\"/ui/workflows/drawn\""), "{list}");
    let (status, html) = page(&app, &cookie, "/ui/workflows/drawn").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<svg class=\"graph\""), "{html}");
    for (step, state) in [
        ("fetch", "queued"),
        ("split", "waiting"),
        ("report", "waiting"),
    ] {
        assert!(
            html.contains(&format!("data-step=\"{step}\" data-state=\"{state}\"")),
            "{step} {state}: {html}"
        );
    }
    assert_eq!(
        html.matches("class=\"edge\"").count(),
        3,
        "three dependencies: {html}"
    );
    assert!(
        html.contains("data-refresh=\"1\""),
        "refreshed while running"
    );
    // A cancel without the form's token is refused; with it, the workflow ends.
    let refused = no_redirects()
        .post(format!("{}/ui/workflows/drawn/cancel", app.base))
        .header("cookie", &cookie)
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let done = no_redirects()
        .post(format!("{}/ui/workflows/drawn/cancel", app.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    errand_testkit::wait_for(
        "the cancelled workflow to end",
        std::time::Duration::from_secs(5),
        || async {
            let w: serde_json::Value = app.get("/v1/workflows/drawn").await.json().await.ok()?;
            (w["state"] == "cancelled").then_some(())
        },
    )
    .await;
    let (status, _) = page(&app, &cookie, "/ui/workflows/no.such").await;
    assert_eq!(status, 400);
}
