//! The OpenAPI document as a contract, checked against the running server: every bound,
//! pattern and enum it states is probed at the boundary and just past it; every operation's
//! security requirement is what the server enforces; the kind unions carry exactly the
//! catalog's schemas; what responses always carry is marked required.

use std::collections::BTreeSet;

use futures::{StreamExt, stream};
use serde_json::{Map, Value, json};

use crate::helpers::{TestApp, problem, spawn_app, spawn_app_with};

/// The server the probes run against: small limits where a limit makes a probe costly, and
/// the diagnostic kind on, so that every kind has its bounds probed.
async fn probe_app() -> TestApp {
    spawn_app_with(|s| {
        s.api.max_batch = 20;
        s.api.max_wait_secs = 3;
        s.tasks.diagnostic_kinds = true;
        s.tasks.max_sleep_secs = 120;
    })
    .await
}

async fn document(app: &TestApp, path: &str) -> Value {
    let res = app.get(path).await;
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

/// Follows `$ref`s into the document's components.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("a schema ref");
        schema = &doc["components"]["schemas"][name];
        assert!(schema.is_object(), "dangling {r}");
    }
    schema
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}

fn is_integer(schema: &Value) -> bool {
    schema["type"] == "integer"
        || schema["type"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("integer")))
}

/// A value at `bound` (accepted when `inside`) and its neighbour on the other side.
fn neighbours(schema: &Value) -> Vec<(Value, bool, String)> {
    let int = is_integer(schema);
    let step = if int { 1.0 } else { 0.001 };
    let num = |x: f64| {
        if int { json!(x as i64) } else { json!(x) }
    };
    let mut out = Vec::new();
    if let Some(min) = schema["minimum"].as_f64() {
        out.push((num(min), true, format!("minimum {min}")));
        out.push((num(min - step), false, format!("below minimum {min}")));
    }
    if let Some(max) = schema["maximum"].as_f64() {
        out.push((num(max), true, format!("maximum {max}")));
        out.push((num(max + step), false, format!("above maximum {max}")));
    }
    if let Some(min) = schema["exclusiveMinimum"].as_f64() {
        out.push((num(min), false, format!("exclusive minimum {min}")));
        out.push((
            num(min + step),
            true,
            format!("just above exclusive minimum {min}"),
        ));
    }
    if let Some(values) = schema["enum"].as_array() {
        for v in values {
            out.push((v.clone(), true, format!("enum value {v}")));
        }
        out.push((json!("not-a-member"), false, "outside the enum".into()));
    }
    out
}

/// Strings at and past a pattern's edges. Only the two pattern shapes the document uses are
/// understood: `^[set]{m,n}$` and `^[^set]*$`; another shape fails the test, so a new pattern
/// gets its probes written here.
fn pattern_probes(pattern: &str) -> Vec<(String, bool, String)> {
    if let Some(set) = pattern
        .strip_prefix("^[^")
        .and_then(|p| p.strip_suffix("]*$"))
    {
        assert!(
            set.starts_with("\\u0000"),
            "negated set starts at NUL: {pattern}"
        );
        return vec![
            ("plain words".into(), true, format!("matches {pattern}")),
            (
                "line\u{1}break".into(),
                false,
                format!("a control character against {pattern}"),
            ),
            (
                "tab\u{85}x".into(),
                false,
                format!("a C1 control against {pattern}"),
            ),
        ];
    }
    let body = pattern
        .strip_prefix("^[")
        .and_then(|p| p.strip_suffix('$'))
        .unwrap_or_else(|| panic!("unprobed pattern shape {pattern}"));
    let (set, counts) = body
        .split_once("]{")
        .unwrap_or_else(|| panic!("unprobed pattern shape {pattern}"));
    let (lo, hi) = counts
        .trim_end_matches('}')
        .split_once(',')
        .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
        .unwrap();
    assert!(
        set.starts_with("A-Za-z0-9"),
        "a set of letters and digits: {pattern}"
    );
    let extra: Vec<char> = set["A-Za-z0-9".len()..].chars().collect();
    let mut out = vec![
        ("a".repeat(lo), true, format!("{lo} characters")),
        ("b".repeat(hi), true, format!("{hi} characters")),
        ("c".repeat(hi + 1), false, format!("{} characters", hi + 1)),
    ];
    if lo > 0 {
        out.push((String::new(), false, "empty".into()));
    }
    for c in extra
        .iter()
        .filter(|c| **c != '-' || extra.last() == Some(c))
    {
        out.push((format!("x{c}y"), true, format!("with `{c}`")));
    }
    for c in ['/', ' ', '~', '*', '#'] {
        if !extra.contains(&c) {
            out.push((format!("x{c}y"), false, format!("with `{c}`")));
        }
    }
    out
}

/// Every way a value of `schema` can sit on or past a documented edge, as JSON values.
fn edges(doc: &Value, schema: &Value) -> Vec<(Value, bool, String)> {
    let schema = resolve(doc, schema);
    let mut out = neighbours(schema);
    // A nullable reference (`oneOf: [null, $ref]`): the referenced schema's edges.
    for key in ["oneOf", "anyOf"] {
        let branches = schema[key].as_array().into_iter().flatten();
        for b in branches.filter(|b| b.get("$ref").is_some()) {
            out.extend(edges(doc, b));
        }
    }
    if let Some(p) = schema["pattern"].as_str() {
        out.extend(
            pattern_probes(p)
                .into_iter()
                .map(|(s, ok, w)| (json!(s), ok, w)),
        );
    }
    out
}

struct Probe {
    what: String,
    method: reqwest::Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    /// `None`: accepted; `Some(field)`: refused naming `field` (`""`: a 413 names none).
    refused: Option<String>,
}

async fn run(app: &TestApp, probes: Vec<Probe>) {
    let total = probes.len();
    // `/async/blocking` blocks an HTTP worker thread on purpose (up to 10 s at its maximum):
    // requests queued behind it on that thread would time out (408), so its probes go one
    // at a time to a second server with the same settings, beside the others.
    let (blocking, others): (Vec<Probe>, Vec<Probe>) = probes
        .into_iter()
        .partition(|p| p.url.contains("/async/blocking"));
    let alone = probe_app().await;
    let blocking = blocking
        .into_iter()
        .map(|p| Probe {
            url: p.url.replace(&app.base, &alone.base),
            ..p
        })
        .collect();
    let (mut failures, more) =
        tokio::join!(probe_all(app, others, 16), probe_all(&alone, blocking, 1));
    failures.extend(more);
    assert!(
        failures.is_empty(),
        "{} of {total} probes disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total > 100, "only {total} probes");
}

/// Sends the probes, `parallel` at a time; what each got, where it is not what it expected.
async fn probe_all(app: &TestApp, probes: Vec<Probe>, parallel: usize) -> Vec<String> {
    stream::iter(probes)
        .map(|p| async move {
            let mut req = app.http.request(p.method.clone(), &p.url);
            for (k, v) in &p.headers {
                req = req.header(k, v);
            }
            if let Some(b) = &p.body {
                req = req.json(b);
            }
            let res = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", p.what));
            let status = res.status().as_u16();
            // An accepted event stream of a live task stays open: its status is the answer.
            let stream = res
                .headers()
                .get("content-type")
                .is_some_and(|c| c == "text/event-stream");
            let body: Value = if stream {
                Value::Null
            } else {
                res.json().await.unwrap_or(Value::Null)
            };
            let ok = match &p.refused {
                None => !matches!(status, 400 | 413 | 422),
                Some(f) if f.is_empty() => status == 413,
                Some(f) => matches!(status, 400 | 422) && body["field"] == json!(f),
            };
            (!ok).then(|| format!("{}: {status} {body}", p.what))
        })
        .buffer_unordered(parallel)
        .filter_map(|f| async move { f })
        .collect()
        .await
}

/// A concrete URL for `path`, with each path parameter a valid id unless overridden.
fn url(app: &TestApp, path: &str, over: Option<(&str, &str)>) -> String {
    let mut p = path.to_owned();
    for name in ["id", "task_id", "queue"] {
        let v = match over {
            Some((n, v)) if n == name => v.to_owned(),
            _ => "probe-no-such-id".to_owned(),
        };
        p = p.replace(&format!("{{{name}}}"), &v);
    }
    format!("{}{p}", app.base)
}

/// A valid value for every required query parameter, unique per probe so that no probe
/// collides with another's task.
fn required_query(doc: &Value, op: &Value, skip: &str, n: usize) -> Vec<(String, String)> {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query" && p["required"] == true && p["name"] != skip)
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_owned();
            let schema = resolve(doc, &p["schema"]);
            let v = if schema["pattern"].is_string() {
                format!("probe-{n}")
            } else {
                schema["minimum"].as_f64().unwrap_or(0.0).to_string()
            };
            (name, v)
        })
        .collect()
}

fn query_string(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}

/// Query, path and header parameters: each documented edge against the server.
fn parameter_probes(app: &TestApp, doc: &Value) -> Vec<Probe> {
    let mut probes = Vec::new();
    for (path, method, op) in operations(doc) {
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap();
            for (value, inside, what) in edges(doc, &p["schema"]) {
                let n = probes.len();
                let v = text(&value);
                let mut query = required_query(doc, &op, name, n);
                let (mut u, mut headers) = (url(app, &path, None), Vec::new());
                let field = match p["in"].as_str().unwrap() {
                    "query" => {
                        query.push((name.to_owned(), v));
                        name.to_owned()
                    }
                    "path" => {
                        // Each segment is checked before anything is looked up, so a valid id
                        // of a task that does not exist is a 404, not a 400.
                        if v.is_empty() || v.contains(['/', ' ', '#']) {
                            continue; // not a path segment at all
                        }
                        u = url(app, &path, Some((name, &v)));
                        name.to_owned()
                    }
                    "header" => {
                        headers.push((name.to_owned(), v));
                        // The key stands for the body's `id`, and is reported as it.
                        "id".to_owned()
                    }
                    other => panic!("parameter in {other}"),
                };
                if !query.is_empty() {
                    u = format!("{u}?{}", query_string(&query));
                }
                // A body that passes, so the parameter alone decides.
                let body = op.get("requestBody").map(|_| {
                    if path.ends_with("/limits") {
                        json!({})
                    } else if path.ends_with("/bulk") {
                        json!({"action": "cancel"})
                    } else {
                        json!({"kind": "noop"})
                    }
                });
                probes.push(Probe {
                    what: format!("{method} {path} {name}: {what}"),
                    method: method.to_uppercase().parse().unwrap(),
                    url: u,
                    headers,
                    body,
                    refused: (!inside).then_some(field),
                });
            }
        }
    }
    probes
}

/// An array of `n` copies of `item`.
fn copies(item: &Value, n: usize) -> Value {
    Value::Array(vec![item.clone(); n])
}

/// Each edge of a body property, set into `base` at `at`.
/// Fields a submit must give together (422 naming the missing one otherwise): a probe of
/// one sends the other with this valid value.
fn companion(field: &str) -> Option<(&'static str, Value)> {
    match field {
        "unique_key" => Some(("unique_for_secs", json!(60))),
        "unique_for_secs" => Some(("unique_key", json!("probe-key"))),
        _ => None,
    }
}

fn property_probes(
    doc: &Value,
    schema: &Value,
    base: &Value,
    at: &[&str],
    field_prefix: &str,
    mut emit: impl FnMut(Value, Option<String>, String),
) {
    let schema = resolve(doc, schema);
    for (prop, s) in schema["properties"].as_object().into_iter().flatten() {
        if at.is_empty() && (prop == "kind" || prop == "payload") {
            continue;
        }
        let s = resolve(doc, s);
        let field = format!("{field_prefix}{prop}");
        let mut set = |v: Value, ok: bool, what: String| {
            let mut body = base.clone();
            let mut target = &mut body;
            for k in at {
                target = &mut target[*k];
            }
            target[prop.as_str()] = v;
            // Fields documented as given together: each probe sends its companion too.
            if let Some((other, with)) = companion(prop)
                && target.get(other).is_none()
            {
                target[other] = with;
            }
            emit(
                body,
                (!ok).then(|| field.clone()),
                format!("{field}: {what}"),
            );
        };
        for (v, ok, what) in edges(doc, s) {
            set(v, ok, what);
        }
        let arrays: Vec<&Value> = std::iter::once(s)
            .chain(s["oneOf"].as_array().into_iter().flatten())
            .filter(|a| a["type"] == "array")
            .collect();
        for a in arrays {
            let item = base
                .pointer(&format!("/{}/{prop}/0", at.join("/")).replace("//", "/"))
                .cloned()
                .unwrap_or_else(|| json!("probe@example.com"));
            if let Some(min) = a["minItems"].as_u64() {
                let min = min as usize;
                set(copies(&item, min), true, format!("{min} items"));
                if min > 0 {
                    set(copies(&item, min - 1), false, format!("{} items", min - 1));
                }
            }
            if let Some(max) = a["maxItems"].as_u64() {
                let max = max as usize;
                set(copies(&item, max), true, format!("{max} items"));
                set(copies(&item, max + 1), false, format!("{} items", max + 1));
            }
        }
    }
}

/// Submit and schedule bodies: the common fields on one kind, every kind's payload fields.
fn body_probes(app: &TestApp, doc: &Value) -> Vec<Probe> {
    let mut probes = Vec::new();
    let schemas = &doc["components"]["schemas"];
    for (union, route) in [
        ("SubmitTask", "/v1/tasks"),
        ("CreateSchedule", "/v1/schedules"),
    ] {
        let branches = schemas[union]["oneOf"].as_array().unwrap();
        for (i, branch) in branches.iter().enumerate() {
            let b = resolve(doc, branch);
            let base = b["example"].clone();
            let mut emit = |mut body: Value, refused: Option<String>, what: String| {
                if union == "CreateSchedule" && !what.starts_with("id:") {
                    // Each schedule its own id: one taken with another definition is a 409.
                    body["id"] = json!(format!("probe-{}", probes.len()));
                }
                probes.push(Probe {
                    what: format!("POST {route} {}: {what}", base["kind"]),
                    method: reqwest::Method::POST,
                    url: format!("{}{route}", app.base),
                    headers: vec![],
                    body: Some(body),
                    refused,
                });
            };
            if i == 0 {
                property_probes(doc, b, &base, &[], "", &mut emit);
            }
            let payload = &b["properties"]["payload"];
            property_probes(doc, payload, &base, &["payload"], "payload.", &mut emit);
        }
    }
    // The batch's own bound: 1 to api.max_batch tasks (413 beyond, as a too-large body).
    let tasks = &schemas["SubmitBatch"]["properties"]["tasks"];
    let item = json!({"kind": "noop"});
    let max = tasks["maxItems"].as_u64().unwrap() as usize;
    for (n, refused) in [
        (1, None),
        (0, Some("tasks")),
        (max, None),
        (max + 1, Some("")),
    ] {
        probes.push(Probe {
            what: format!("POST /v1/tasks/batch with {n} tasks"),
            method: reqwest::Method::POST,
            url: format!("{}/v1/tasks/batch", app.base),
            headers: vec![],
            body: Some(json!({"tasks": copies(&item, n)})),
            refused: refused.map(str::to_owned),
        });
    }
    probes
}

#[tokio::test]
async fn every_documented_bound_pattern_and_enum_is_the_servers() {
    let app = probe_app().await;
    let doc = document(&app, "/openapi.json").await;
    let mut probes = parameter_probes(&app, &doc);
    probes.extend(body_probes(&app, &doc));
    // The slowest probe is the demo's longest delay (three sequential 10 s awaits); the
    // others run beside it.
    run(&app, probes).await;
}

#[tokio::test]
async fn each_kind_has_its_branch_with_the_catalogs_schemas() {
    let app = spawn_app().await;
    let doc = document(&app, "/openapi.json").await;
    let kinds: Vec<Value> = app.get("/v1/kinds").await.json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    for union in ["SubmitTask", "CreateSchedule", "TaskRecord"] {
        let u = &schemas[union];
        assert_eq!(u["discriminator"]["propertyName"], "kind", "{union}");
        assert_eq!(
            u["oneOf"].as_array().unwrap().len(),
            kinds.len(),
            "{union}: a branch per kind"
        );
        let mapping = u["discriminator"]["mapping"].as_object().unwrap();
        for k in &kinds {
            let name = k["name"].as_str().unwrap();
            let target = mapping[name].as_str().unwrap();
            let target_ref = json!({ "$ref": target });
            let branch = resolve(&doc, &target_ref);
            let mut names = vec![json!(name)];
            if union != "TaskRecord" {
                names.extend(k["aliases"].as_array().unwrap().iter().cloned());
                for a in k["aliases"].as_array().unwrap() {
                    assert_eq!(
                        mapping[a.as_str().unwrap()],
                        json!(target),
                        "{union}: alias {a}"
                    );
                }
            }
            assert_eq!(
                branch["properties"]["kind"]["enum"],
                Value::Array(names),
                "{union} {name}"
            );
            let payload = resolve(&doc, &branch["properties"]["payload"]);
            assert_eq!(
                payload, &k["payload_schema"],
                "{union} {name}: the catalog's payload schema"
            );
            if union == "TaskRecord" {
                let result = &branch["properties"]["result"]["anyOf"][0];
                assert_eq!(
                    resolve(&doc, result),
                    &k["result_schema"],
                    "{name}: its result schema"
                );
            } else {
                assert_eq!(branch["additionalProperties"], false, "{union} {name}");
            }
        }
        // The branches' kinds exclude one another, so `oneOf` holds without the discriminator.
        let mut seen = BTreeSet::new();
        for b in u["oneOf"].as_array().unwrap() {
            for n in resolve(&doc, b)["properties"]["kind"]["enum"]
                .as_array()
                .unwrap()
            {
                assert!(seen.insert(n.to_string()), "{union}: {n} in two branches");
            }
        }
    }
    // Each kind's documented example is accepted as the branch says.
    for k in &kinds {
        let res = app
            .post_task(&json!({"kind": k["name"], "payload": k["example"]}))
            .await;
        assert_eq!(res.status(), 202, "{}", k["name"]);
    }
}

/// With keys configured, each operation that lists `bearer` answers 401 without one, and
/// each that lists none does not.
#[tokio::test]
async fn every_operations_security_is_what_the_server_enforces() {
    let app = spawn_app_with(|s| {
        s.api.api_keys = vec![errand_core::settings::ApiKey::new(
            errand_core::settings::Scope::Admin,
            "s3cret",
        )];
    })
    .await;
    let doc = document(&app, "/openapi.json").await;
    let mut open = Vec::new();
    for (path, method, op) in operations(&doc) {
        let guarded = match op["security"].as_array() {
            Some(s) if s.is_empty() => false,
            Some(s) if s == &vec![json!({"bearer": []})] => true,
            other => panic!("{method} {path}: security {other:?}"),
        };
        assert_eq!(
            op["responses"].get("401").is_some(),
            guarded,
            "{method} {path}: 401 documented exactly when guarded"
        );
        let res = app
            .http
            .request(
                method.to_uppercase().parse().unwrap(),
                url(&app, &path, None),
            )
            .send()
            .await
            .unwrap();
        if guarded {
            assert_eq!(
                res.headers()["www-authenticate"],
                "Bearer",
                "{method} {path}"
            );
            problem(res, 401).await;
        } else {
            assert_ne!(res.status(), 401, "{method} {path} is open");
            open.push(format!("{method} {path}"));
        }
    }
    assert_eq!(open, ["get /healthz", "get /readyz"]);
    let description = doc["info"]["description"].as_str().unwrap();
    for route in [
        "`GET /healthz`",
        "`GET /readyz`",
        "`GET /openapi.json`",
        "`GET /openapi/product.json`",
    ] {
        assert!(
            description.contains(route),
            "the description names {route} as open"
        );
    }
    for route in ["/openapi.json", "/openapi/product.json", "/docs/"] {
        assert_eq!(app.get(route).await.status(), 200, "{route} is open");
    }
}

/// Every field a response always carries is required, by the documented schema of real
/// responses: absent-able fields are the ones serde skips when empty.
#[tokio::test]
async fn what_responses_always_carry_is_required() {
    let app = spawn_app().await;
    let doc = document(&app, "/openapi.json").await;
    let check = |schema: &Value, body: &Value, what: &str| {
        let schema = resolve(&doc, schema);
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let sent: BTreeSet<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(required, sent, "{what}: required = what is sent");
    };
    let record: Value = app
        .post_task(&json!({"kind": "sleep", "payload": {"duration_secs": 1}}))
        .await
        .json()
        .await
        .unwrap();
    check(
        &json!({"$ref": "#/components/schemas/SleepTaskRecord"}),
        &record,
        "a queued record",
    );
    let page: Value = app.get("/v1/tasks").await.json().await.unwrap();
    check(
        &json!({"$ref": "#/components/schemas/TaskPage"}),
        &page,
        "a task page",
    );
    let schedule: Value = app
        .http
        .post(format!("{}/v1/schedules", app.base))
        .json(&json!({"cron": "0 0 * * *", "kind": "noop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    check(
        &json!({"$ref": "#/components/schemas/Schedule"}),
        &schedule,
        "a schedule",
    );
    let page: Value = app.get("/v1/schedules").await.json().await.unwrap();
    check(
        &json!({"$ref": "#/components/schemas/SchedulePage"}),
        &page,
        "a schedule page",
    );
    let queues: Value = app.get("/v1/queues").await.json().await.unwrap();
    check(
        &json!({"$ref": "#/components/schemas/QueueInfo"}),
        &queues["queues"][0],
        "a queue",
    );
    let status: Value = app
        .http
        .post(format!(
            "{}/tasks/background/simple?task_id=req-1&duration=0",
            app.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    check(
        &json!({"$ref": "#/components/schemas/BackgroundStatus"}),
        &status,
        "a background status",
    );
    let celery: Value = app
        .get(&format!(
            "/tasks/celery/task/{}",
            record["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    check(
        &json!({"$ref": "#/components/schemas/CeleryTask"}),
        &celery,
        "a celery answer",
    );
    assert!(celery["result"].is_null());
    // A problem names a field only when one is at fault; never as null.
    let p = problem(app.get("/v1/tasks/a%20b").await, 400).await;
    assert!(p["field"].is_string(), "{p}");
    let p = problem(app.get("/v1/nothing-here").await, 404).await;
    assert!(p.get("field").is_none(), "{p}");
    let problem_schema = &doc["components"]["schemas"]["Problem"];
    assert_eq!(problem_schema["properties"]["field"]["type"], "string");
}

/// No description is left beside a `$ref` inside `oneOf`/`anyOf`, where generators drop it.
#[tokio::test]
async fn descriptions_sit_on_the_property_not_beside_a_nested_ref() {
    let app = spawn_app().await;
    let doc = document(&app, "/openapi.json").await;
    fn walk(v: &Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for key in ["oneOf", "anyOf"] {
                    for (i, b) in m
                        .get(key)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        if b.get("$ref").is_some() && b.as_object().is_some_and(|o| o.len() > 1) {
                            out.push(format!("{at}/{key}/{i}"));
                        }
                    }
                }
                for (k, x) in m {
                    walk(x, &format!("{at}/{k}"), out);
                }
            }
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| walk(x, &format!("{at}/{i}"), out)),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    walk(&doc, "", &mut bad);
    assert!(bad.is_empty(), "siblings beside a nested $ref: {bad:?}");
    let record = &doc["components"]["schemas"]["SleepTaskRecord"]["properties"];
    for field in ["error", "progress", "result"] {
        assert!(
            record[field]["description"].is_string(),
            "{field} keeps its description"
        );
    }
    let misfire = &doc["components"]["schemas"]["CreateScheduleNoop"]["properties"]["misfire"];
    assert!(
        misfire["description"].is_string(),
        "misfire keeps its description"
    );
}

/// The event stream is a string to generators, with each event's schema beside it.
#[tokio::test]
async fn the_event_stream_is_a_string_with_its_event_schema_beside_it() {
    let app = spawn_app().await;
    let doc = document(&app, "/openapi.json").await;
    let content = &doc["paths"]["/v1/tasks/{id}/events"]["get"]["responses"]["200"]["content"];
    let media: &Map<String, Value> = content.as_object().unwrap();
    assert_eq!(media.keys().collect::<Vec<_>>(), ["text/event-stream"]);
    let sse = &content["text/event-stream"];
    assert_eq!(sse["schema"]["type"], "string");
    let event = resolve(&doc, &sse["x-item-schema"]);
    let change = &event["oneOf"][0]["properties"];
    assert_eq!(
        change["data"]["contentSchema"],
        json!({"$ref": "#/components/schemas/TaskRecord"})
    );
    assert!(
        change["event"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("progress"))
    );
    // And the server sends what it says: a first event that is a record of the kind submitted.
    let record: Value = app
        .post_task(&json!({"kind": "noop", "payload": {"x": 1}}))
        .await
        .json()
        .await
        .unwrap();
    let mut res = app
        .get(&format!(
            "/v1/tasks/{}/events",
            record["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let chunk = String::from_utf8(res.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    let (head, data) = chunk.split_once('\n').unwrap();
    assert_eq!(head, "event: queued");
    let sent: Value = serde_json::from_str(data.trim_start_matches("data: ").trim_end()).unwrap();
    assert_eq!(sent["kind"], "noop");
    assert_eq!(sent["payload"], json!({"x": 1}));
}
