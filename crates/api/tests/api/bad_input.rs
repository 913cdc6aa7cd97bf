//! Bad input on every route that reads input, against the real `Application` (in process,
//! port 0) and a real redis-server: always a 4xx problem+json, never a 5xx, and the api
//! stays up. `just chaos` runs it too and prints its `chaos[bad-input]` figures.

use std::path::PathBuf;

use errand_api::startup::Application;
use errand_core::{Settings, settings::Environment};
use errand_testkit::{RedisServer, api::submit};
use futures::StreamExt;
use serde_json::{Value, json};

/// The app as `helpers::spawn_app_with` starts it, but on the default Redis timeouts (as the
/// binary runs) and keeping the server's handle, so the test can tell it is still running.
fn spawn(
    redis: &RedisServer,
    tweak: impl FnOnce(&mut Settings),
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"));
    let mut settings = Settings::load_from(Environment::Local, &dir).expect("settings");
    settings.api.port = 0;
    settings.api.host = "127.0.0.1".into();
    settings.redis.url = redis.url();
    settings.redis.key_prefix = format!("badinput{}", redis.port());
    settings.tasks.diagnostic_kinds = true;
    tweak(&mut settings);
    let app = Application::build(settings).expect("build app");
    let base = format!("http://127.0.0.1:{}", app.port());
    (base, tokio::spawn(app.run_until_stopped()))
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Asserts a 4xx problem+json; returns its body.
async fn problem(res: reqwest::Response, status: u16, what: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "{what}");
    assert_eq!(
        res.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "{what}"
    );
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["status"], status, "{what}: {p}");
    assert!(
        p["title"].is_string() && p["detail"].is_string(),
        "{what}: {p}"
    );
    p
}

/// One bad request: method, path, content type, body, expected status, field named.
type Case<'a> = (&'a str, String, &'a str, Vec<u8>, u16, Option<&'a str>);

/// Malformed JSON, wrong types, huge bodies, deep nesting, unknown fields, invalid ids and
/// query values, wrong content types, on every route that reads input (submit, batch,
/// listing, long-poll, events, cancel, retry): always a 4xx problem+json naming the field
/// where there is one, and the api stays healthy throughout, also under a burst of them.
#[tokio::test]
async fn bad_input_on_every_route_is_a_4xx_problem_and_the_api_stays_healthy() {
    let redis = RedisServer::start().await;
    let (base, api) = spawn(&redis, |s| s.api.max_batch_body_bytes = 65536);
    let http = reqwest::Client::new();
    // No worker: `existing` stays queued (a retry of it is a 409), `ended` is cancelled (a
    // cancel of it is a 409), whatever the requests below carry.
    let existing = id_of(&submit(&http, &base, json!({"kind": "noop"})).await);
    let ended = id_of(&submit(&http, &base, json!({"kind": "noop"})).await);
    let res = http
        .post(format!("{base}/v1/tasks/{ended}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let deep = "[".repeat(20_000) + &"]".repeat(20_000);
    let huge = format!(
        "{{\"kind\":\"noop\",\"payload\":{{\"s\":\"{}\"}}}}",
        "x".repeat(2 << 20)
    );
    let big_batch = format!(
        "{{\"tasks\":[{}]}}",
        vec!["{\"kind\":\"noop\",\"payload\":{\"s\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}"; 1000]
            .join(",")
    );
    let long_id = "a".repeat(129);

    let mut cases: Vec<Case<'_>> = Vec::new();
    let json_ct = "application/json";
    for path in ["/v1/tasks", "/v1/tasks/batch"] {
        let p = path.to_owned();
        cases.extend([
            (
                "POST",
                p.clone(),
                json_ct,
                b"{\"kind\": ".to_vec(),
                400,
                None,
            ),
            ("POST", p.clone(), json_ct, b"not json".to_vec(), 400, None),
            ("POST", p.clone(), json_ct, b"".to_vec(), 400, None),
            ("POST", p.clone(), json_ct, b"null".to_vec(), 400, None),
            ("POST", p.clone(), json_ct, b"[1,2]".to_vec(), 400, None),
            (
                "POST",
                p.clone(),
                json_ct,
                b"\xff\xfe\x00{".to_vec(),
                400,
                None,
            ),
            (
                "POST",
                p.clone(),
                json_ct,
                deep.clone().into_bytes(),
                400,
                None,
            ),
            ("POST", p.clone(), "text/plain", b"{}".to_vec(), 415, None),
            (
                "POST",
                p.clone(),
                "application/x-www-form-urlencoded",
                b"kind=noop".to_vec(),
                415,
                None,
            ),
            ("POST", p.clone(), "", b"{}".to_vec(), 415, None),
            (
                "POST",
                p.clone(),
                json_ct,
                huge.clone().into_bytes(),
                413,
                None,
            ),
        ]);
    }
    let task = |v: Value| serde_json::to_vec(&v).unwrap();
    let batch = |v: Value| serde_json::to_vec(&json!({ "tasks": [v] })).unwrap();
    cases.extend([
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": 5})),
            400,
            Some("kind"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "max_attempts": "3"})),
            400,
            Some("max_attempts"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "delay_secs": -5})),
            400,
            Some("delay_secs"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "timeout_secs": 1e30})),
            400,
            Some("timeout_secs"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "surprise": 1})),
            400,
            None,
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "id": long_id})),
            422,
            Some("id"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "id": "a b"})),
            422,
            Some("id"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "id": ""})),
            422,
            Some("id"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "queue": "q:1"})),
            422,
            Some("queue"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "sleep", "payload": {"duration_secs": 1e300}})),
            422,
            Some("payload.duration_secs"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "sleep", "payload": [1]})),
            422,
            Some("payload"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "chaos", "payload": {"mode": "explode"}})),
            422,
            Some("payload.mode"),
        ),
        (
            "POST",
            "/v1/tasks".into(),
            json_ct,
            task(json!({"kind": "noop", "run_at": "2999-01-01T00:00:00Z"})),
            422,
            Some("run_at"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            task(json!({"tasks": {"kind": "noop"}})),
            400,
            Some("tasks"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            task(json!({"tasks": null})),
            400,
            Some("tasks"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            task(json!({"tasks": [], "extra": 1})),
            400,
            None,
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            task(json!({"tasks": []})),
            422,
            Some("tasks"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            batch(json!({"kind": "noop", "id": "no/slash"})),
            422,
            Some("tasks[0].id"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            batch(json!({"kind": "nope"})),
            422,
            Some("tasks[0].kind"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            batch(json!({"kind": "noop", "max_attempts": 0})),
            422,
            Some("tasks[0].max_attempts"),
        ),
        (
            "POST",
            "/v1/tasks/batch".into(),
            json_ct,
            big_batch.clone().into_bytes(),
            413,
            None,
        ),
    ]);
    for q in [
        "state=bogus",
        "state=",
        "state=SUCCEEDED",
        "limit=0",
        "limit=501",
        "limit=-1",
        "limit=abc",
        "limit=1&limit=2",
        "cursor=garbage",
        "cursor=1:a%20b",
        "queue=a%20b",
        "queue=",
        "kind=",
        "bogus=1",
        "state=%zz",
        "state=%FF",
    ] {
        let field = q.split('=').next().unwrap();
        let field = if q.contains('%') && !q.starts_with("cursor") && !q.starts_with("queue") {
            "query"
        } else {
            field
        };
        cases.push((
            "GET",
            format!("/v1/tasks?{q}"),
            "",
            vec![],
            400,
            Some(field),
        ));
    }
    for q in [
        "wait=-1",
        "wait=abc",
        "wait=99999",
        "wait=",
        "wait=1&wait=2",
        "wait=1.5",
        "other=1",
    ] {
        let field = q.split('=').next().unwrap();
        cases.push((
            "GET",
            format!("/v1/tasks/{existing}?{q}"),
            "",
            vec![],
            400,
            Some(field),
        ));
    }
    for bad in ["a%20b", "%7Bbad%7D", long_id.as_str(), "a%2Fb", "%FF"] {
        for (method, suffix) in [
            ("GET", ""),
            ("GET", "/events"),
            ("POST", "/cancel"),
            ("POST", "/retry"),
        ] {
            cases.push((
                method,
                format!("/v1/tasks/{bad}{suffix}"),
                "",
                vec![],
                400,
                Some("id"),
            ));
        }
    }
    for (method, suffix) in [
        ("GET", ""),
        ("GET", "/events"),
        ("POST", "/cancel"),
        ("POST", "/retry"),
    ] {
        cases.push((
            method,
            format!("/v1/tasks/never-was{suffix}"),
            "",
            vec![],
            404,
            None,
        ));
    }
    cases.extend([
        (
            "DELETE",
            format!("/v1/tasks/{existing}"),
            "",
            vec![],
            404,
            None,
        ),
        (
            "PUT",
            "/v1/tasks".into(),
            json_ct,
            b"{}".to_vec(),
            404,
            None,
        ),
        ("GET", "/v1/tasks/batch/x/y".into(), "", vec![], 404, None),
        (
            "POST",
            format!("/v1/tasks/{ended}/cancel"),
            json_ct,
            b"garbage".to_vec(),
            409,
            None,
        ),
        (
            "POST",
            format!("/v1/tasks/{existing}/retry"),
            json_ct,
            b"garbage".to_vec(),
            409,
            None,
        ),
    ]);

    let total = cases.len();
    for (method, path, ct, body, status, field) in &cases {
        let what = format!(
            "{method} {path} ({ct}, {} bytes: {})",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(120)])
        );
        let mut req = http.request(method.parse().unwrap(), format!("{base}{path}"));
        if !ct.is_empty() {
            req = req.header("content-type", *ct);
        }
        let res = req.body(body.clone()).send().await.expect(&what);
        let p = problem(res, *status, &what).await;
        if let Some(f) = field {
            assert_eq!(p["field"], *f, "{what}: {p}");
        }
    }
    // A burst of the same, concurrently: still no 5xx, and the api stays up and ready.
    let burst: Vec<u16> = futures::stream::iter(cases.iter().cycle().take(600))
        .map(|(method, path, ct, body, _, _)| {
            let mut req = http.request(method.parse().unwrap(), format!("{base}{path}"));
            if !ct.is_empty() {
                req = req.header("content-type", *ct);
            }
            let req = req.body(body.clone());
            async move { req.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(burst.iter().all(|s| (400..500).contains(s)), "{burst:?}");
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(!api.is_finished(), "api alive");
    let ok = submit(&http, &base, json!({"kind": "noop"})).await;
    assert_eq!(ok["state"], "queued");
    eprintln!(
        "chaos[bad-input] distinct_cases={total} burst_requests={} answers_5xx=0 api_healthy=true",
        burst.len()
    );
}
