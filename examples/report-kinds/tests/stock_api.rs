//! The stock errand-api, never rebuilt, with `report-worker` beside it on a real Redis: the
//! kinds the worker registers are listed, validated by their JSON Schema (422 problem+json
//! naming the field), run to `succeeded`, and still validated once the worker is gone and
//! the api restarted.
//!
//! Needs the binaries: `cargo build -p errand-api -p report-kinds --bins` first.

use std::{io::Cursor, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use errand_testkit::{Errand, Output, Proc, RedisServer, api, wait_for};
use image::{DynamicImage, GenericImageView, ImageFormat, Rgba, RgbaImage};
use nix::sys::signal::Signal;
use report_kinds::csv_summary::MAX_CSV_CHARS;
use serde_json::{Value, json};

/// Deadline of every wait: generous, the machine may be busy.
const WAIT: Duration = Duration::from_secs(30);

/// A `w`x`h` PNG, base64: a horizontal gradient.
fn png(w: u32, h: u32) -> String {
    let img = RgbaImage::from_fn(w, h, |x, _| Rgba([(x * 255 / w) as u8, 80, 160, 255]));
    let mut out = Vec::new();
    DynamicImage::ImageRgba8(img)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    STANDARD.encode(out)
}

/// A deployment: Redis, the stock api and the http client; the worker is started apart.
struct Deployment {
    _redis: RedisServer,
    errand: Errand,
    api: Proc,
    http: reqwest::Client,
    base: String,
}

impl Deployment {
    async fn start() -> Self {
        let redis = RedisServer::start().await;
        let errand = Errand::new(&redis);
        let api = errand.spawn_api().await;
        let base = errand.base_url();
        Self {
            _redis: redis,
            errand,
            api,
            http: reqwest::Client::new(),
            base,
        }
    }

    /// Starts `report-worker` with this deployment's settings; returns once it registered
    /// its kinds and serves its queue.
    async fn spawn_worker(&self) -> (Proc, Output) {
        let (worker, out) = Proc::spawn_logged("report-worker", &[], &self.errand.env);
        out.wait_for("worker started", WAIT).await;
        (worker, out)
    }

    async fn kinds(&self) -> Vec<Value> {
        let res = self
            .http
            .get(format!("{}/v1/kinds", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Kind `name` as `GET /v1/kinds` lists it, once `ready` holds of it.
    async fn kind_when(&self, name: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        wait_for(&format!("{name} {what}"), WAIT, || async {
            self.kinds()
                .await
                .into_iter()
                .find(|k| k["name"] == name && ready(k))
        })
        .await
    }

    /// Submits and expects a 422 problem+json; returns its body.
    async fn refused(&self, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}/v1/tasks", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{body}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["status"], 422, "{problem}");
        assert!(problem["detail"].is_string(), "{problem}");
        problem
    }

    async fn submit(&self, body: Value) -> Value {
        api::submit(&self.http, &self.base, body).await
    }

    async fn ended(&self, task: &Value, state: &str) -> Value {
        let id = task["id"].as_str().unwrap();
        api::wait_state(&self.http, &self.base, id, state, WAIT).await
    }
}

fn has_workers(k: &Value) -> bool {
    k["workers"].as_array().is_some_and(|w| !w.is_empty())
}

#[tokio::test]
async fn the_stock_api_lists_validates_and_runs_the_kinds_report_worker_registers() {
    let d = Deployment::start().await;
    let (mut worker, _out) = d.spawn_worker().await;
    let pid = worker.child.id().unwrap();

    // Listed, with this worker live, its queue, and the schema the worker registered.
    let csv = d
        .kind_when("csv_summary", "run by a live worker", has_workers)
        .await;
    let workers = csv["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{csv}");
    assert!(
        workers[0].as_str().unwrap().contains(&format!(":{pid}:")),
        "the worker's name holds its pid {pid}: {csv}"
    );
    assert_eq!(csv["queues"], json!(["reports"]));
    assert_eq!(csv["idempotent"], true);
    assert_eq!(csv["schemas_differ"], false);
    let schema = &csv["payload_schema"];
    assert_eq!(schema["properties"]["csv"]["maxLength"], MAX_CSV_CHARS);
    assert_eq!(
        schema["properties"]["delimiter"]["enum"],
        json!([",", ";", "\t", "|"])
    );
    assert_eq!(schema["additionalProperties"], false);
    let thumb = d.kind_when("thumbnail", "listed", has_workers).await;
    let side = &thumb["payload_schema"]["properties"]["max_side"];
    assert_eq!(
        (&side["minimum"], &side["maximum"]),
        (&json!(1), &json!(1024))
    );
    assert!(
        thumb["result_schema"]["properties"]["png_base64"].is_object(),
        "{thumb}"
    );

    // What the schema refuses, the stock api refuses, naming the field.
    let image = png(64, 32);
    for (kind, payload, field) in [
        (
            "thumbnail",
            json!({"png_base64": image, "max_side": 0}),
            "payload.max_side",
        ),
        (
            "thumbnail",
            json!({"png_base64": image, "max_side": 2000}),
            "payload.max_side",
        ),
        (
            "thumbnail",
            json!({"png_base64": image, "max_side": 8, "colour": "red"}),
            "payload.colour",
        ),
        ("thumbnail", json!({"max_side": 8}), "payload.png_base64"),
        (
            "thumbnail",
            json!({"png_base64": "not base64!", "max_side": 8}),
            "payload.png_base64",
        ),
        ("csv_summary", json!({"csv": 5}), "payload.csv"),
        (
            "csv_summary",
            json!({"csv": "a\n", "delimiter": ":"}),
            "payload.delimiter",
        ),
        (
            "csv_summary",
            json!({"csv": "x".repeat(MAX_CSV_CHARS + 1)}),
            "payload.csv",
        ),
    ] {
        let problem = d
            .refused(json!({"kind": kind, "queue": "reports", "payload": payload}))
            .await;
        assert_eq!(problem["field"], field, "{kind}: {problem}");
    }

    // An unknown kind is refused naming `kind`, listing the known ones.
    let problem = d
        .refused(json!({"kind": "csv_sumary", "payload": {"csv": ""}}))
        .await;
    assert_eq!(problem["field"], "kind");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("csv_summary") && detail.contains("thumbnail"),
        "{detail}"
    );

    // Both run to `succeeded` with the results their code computes.
    let task = d
        .submit(
            json!({"kind": "csv_summary", "queue": "reports", "payload": {
                "csv": "city;population;area\nLyon;522250;47.87\nNantes;320732;\nBrest;n/a;49.51\n",
                "delimiter": ";"
            }}),
        )
        .await;
    let done = d.ended(&task, "succeeded").await;
    let result = &done["result"];
    assert_eq!(result["rows"], 3, "{done}");
    let columns = result["columns"].as_array().unwrap();
    let names: Vec<&str> = columns
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["city", "population", "area"]);
    let pop = &columns[1];
    assert_eq!((&pop["non_empty"], &pop["numeric"]), (&json!(3), &json!(2)));
    assert_eq!(pop["min"].as_f64(), Some(320732.0));
    assert_eq!(pop["max"].as_f64(), Some(522250.0));
    assert_eq!(pop["mean"].as_f64(), Some(421491.0));
    assert_eq!(columns[0]["mean"], Value::Null, "no number in `city`");
    assert_eq!(done["progress"]["percent"], 100, "{done}");

    let task = d
        .submit(json!({"kind": "thumbnail", "queue": "reports", "payload": {
            "png_base64": png(300, 120), "max_side": 100
        }}))
        .await;
    let done = d.ended(&task, "succeeded").await;
    let result = &done["result"];
    assert_eq!(
        [
            &result["original_width"],
            &result["original_height"],
            &result["width"],
            &result["height"]
        ],
        [&json!(300), &json!(120), &json!(100), &json!(40)],
        "{result}"
    );
    let bytes = STANDARD
        .decode(result["png_base64"].as_str().unwrap())
        .unwrap();
    let small = image::load_from_memory_with_format(&bytes, ImageFormat::Png).unwrap();
    assert_eq!(small.dimensions(), (100, 40));

    // A ragged CSV passes the schema and fails in the worker, permanently: one attempt.
    let task = d
        .submit(
            json!({"kind": "csv_summary", "queue": "reports", "max_attempts": 3,
                       "payload": {"csv": "a,b\n1,2\n3\n"}}),
        )
        .await;
    let failed = d.ended(&task, "failed").await;
    assert_eq!(failed["error"]["kind"], "invalid_csv", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 3:"),
        "{failed}"
    );
    assert_eq!(failed["attempt"], 1, "{failed}");

    // What only `check` knows (the bytes are a PNG) fails the task `invalid_payload`.
    let task = d
        .submit(json!({"kind": "thumbnail", "queue": "reports",
                       "payload": {"png_base64": STANDARD.encode(b"GIF89a...."), "max_side": 8}}))
        .await;
    let failed = d.ended(&task, "failed").await;
    assert_eq!(failed["error"]["kind"], "invalid_payload", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("payload.png_base64"),
        "{failed}"
    );

    worker.signal(Signal::SIGTERM);
    assert_eq!(worker.wait_exit(WAIT).await, Some(0), "a clean stop");
}

#[tokio::test]
async fn with_the_worker_gone_and_the_api_restarted_the_kinds_still_validate_and_wait() {
    let mut d = Deployment::start().await;
    let (mut worker, _out) = d.spawn_worker().await;
    d.kind_when("thumbnail", "run by a live worker", has_workers)
        .await;
    worker.signal(Signal::SIGTERM);
    assert_eq!(worker.wait_exit(WAIT).await, Some(0));
    d.api.signal(Signal::SIGTERM);
    d.api.wait_exit(WAIT).await;
    d.api = d.errand.spawn_api().await;

    // Still listed, with nobody running them.
    for name in ["csv_summary", "thumbnail"] {
        let k = d
            .kind_when(name, "listed with no worker", |k| k["workers"] == json!([]))
            .await;
        assert!(k["payload_schema"]["properties"].is_object(), "{k}");
    }
    // Still validated by the registered schema...
    let problem = d
        .refused(json!({"kind": "thumbnail", "queue": "reports",
                        "payload": {"png_base64": png(4, 4), "max_side": 4096}}))
        .await;
    assert_eq!(problem["field"], "payload.max_side");
    // ...and a good submit is accepted: it waits for a worker.
    let task = d
        .submit(json!({"kind": "thumbnail", "queue": "reports",
                       "payload": {"png_base64": png(40, 40), "max_side": 10}}))
        .await;
    assert_eq!(task["state"], "queued", "{task}");

    // A worker back on the queue runs it.
    let (mut worker, _out) = d.spawn_worker().await;
    let done = d.ended(&task, "succeeded").await;
    assert_eq!(
        (&done["result"]["width"], &done["result"]["height"]),
        (&json!(10), &json!(10))
    );
    worker.signal(Signal::SIGTERM);
    assert_eq!(worker.wait_exit(WAIT).await, Some(0));
}
