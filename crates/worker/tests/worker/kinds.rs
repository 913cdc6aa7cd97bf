//! The built-in task kinds end to end: each submitted over the real API and run by a real
//! worker, against real servers the test starts (an HTTP server below, the testkit's SMTP
//! server).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use errand_testkit::api::{get, submit, wait_state};
use errand_testkit::{Errand, Proc, RedisServer, free_port, smtp::SmtpSink, wait_for};
use serde_json::{Value, json};

use crate::helpers::time;

struct Env {
    _redis: RedisServer,
    _api: Proc,
    _worker: Proc,
    http: reqwest::Client,
    base: String,
}

/// Redis, the API and one worker (started with `worker_args`), configured by `tweak`.
async fn env(tweak: impl FnOnce(Errand) -> Errand, worker_args: &[&str]) -> Env {
    let redis = RedisServer::start().await;
    let errand = tweak(Errand::new(&redis));
    let api = errand.spawn_api().await;
    let worker = errand.spawn_worker(worker_args);
    Env {
        base: errand.base_url(),
        _redis: redis,
        _api: api,
        _worker: worker,
        http: reqwest::Client::new(),
    }
}

impl Env {
    async fn submit(&self, body: Value) -> String {
        submit(&self.http, &self.base, body).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn wait(&self, id: &str, state: &str, secs: u64) -> Value {
        wait_state(&self.http, &self.base, id, state, Duration::from_secs(secs)).await
    }

    /// Submits `body` expecting a refusal; returns the status and the problem document.
    async fn refused(&self, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/v1/tasks", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(ct, "application/problem+json", "{body}");
        (status, res.json().await.unwrap())
    }

    async fn workers(&self) -> Value {
        self.http
            .get(format!("{}/v1/workers", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Each kind's bad input is refused at submit time with 422, naming the field.
#[tokio::test]
async fn invalid_payloads_are_refused_at_submit_naming_the_field() {
    let e = env(|e| e, &[]).await;
    let cases = [
        (
            json!({"kind": "sha256", "payload": {"base64": "@@@"}}),
            "payload.base64",
        ),
        (
            json!({"kind": "sha256", "payload": {"text": "a", "rounds": 0}}),
            "payload.rounds",
        ),
        (
            json!({"kind": "fibonacci", "payload": {"n": 100_001}}),
            "payload.n",
        ),
        (
            json!({"kind": "http_request", "payload": {"url": "file:///etc/passwd"}}),
            "payload.url",
        ),
        (
            json!({"kind": "http_request", "payload": {"url": "http://x", "timeout_secs": 1e6}}),
            "payload.timeout_secs",
        ),
        (
            json!({"kind": "fan_out", "payload": {"requests": [{"url": "http://x"}, {"url": "x"}]}}),
            "payload.requests[1].url",
        ),
        (
            json!({"kind": "send_email", "payload": {"to": ["a@example.com", "b"], "subject": "s", "text": "t"}}),
            "payload.to[1]",
        ),
        (
            json!({"kind": "send_email", "payload": {"to": "a@example.com", "subject": "s", "text": "t", "bcc": "x"}}),
            "payload.bcc",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = e.refused(body.clone()).await;
        assert_eq!(status, 422, "{body} → {problem}");
        assert_eq!(problem["field"], field, "{body} → {problem}");
    }
}

/// sha256 and fibonacci through the whole system give the known values.
#[tokio::test]
async fn cpu_kinds_give_known_results() {
    let e = env(|e| e, &[]).await;
    let sha = e
        .submit(json!({"kind": "sha256", "payload": {"text": "abc"}}))
        .await;
    let fib = e
        .submit(json!({"kind": "fibonacci", "payload": {"n": 100}}))
        .await;
    let sha = e.wait(&sha, "succeeded", 10).await;
    assert_eq!(
        sha["result"],
        json!({"sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "bytes": 3, "rounds": 1})
    );
    let fib = e.wait(&fib, "succeeded", 10).await;
    assert_eq!(
        fib["result"],
        json!({"n": 100, "digits": 21, "value": "354224848179261915075"})
    );
    assert_eq!(fib["progress"]["percent"], 100);
}

/// CPU-heavy tasks filling as many slots as the worker has executor threads (one per core)
/// do not stall it: they run on the blocking pool, so a `noop` submitted meanwhile is fetched
/// and finished within a second while they hash on, and the heartbeat keeps advancing. Were
/// the hashing on the executor, every executor thread would be busy and the noop would wait
/// for the hashes. The hashes are then cancelled, which their blocking loop honours.
#[tokio::test]
async fn cpu_bound_tasks_run_on_the_blocking_pool_and_never_stall_the_worker() {
    let cores = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let concurrency = format!("default={}", cores + 2);
    let e = env(
        |e| e.with("ERRAND__TASKS__SHA256_MAX_ROUNDS", "1000000000"),
        &["--queues", &concurrency],
    )
    .await;
    // Minutes of hashing; the test cancels them once it has seen what it needs.
    let rounds = 1_000_000_000u64;
    let mut heavy = Vec::new();
    for i in 0..cores {
        heavy.push(
            e.submit(json!({"kind": "sha256", "payload": {"text": format!("heavy {i}"), "rounds": rounds}}))
                .await,
        );
    }
    for id in &heavy {
        e.wait(id, "running", 10).await;
    }
    let seen = |w: &Value| time(&w["workers"][0]["last_seen"]);
    let first_beat = seen(&e.workers().await);

    let submitted = Instant::now();
    let noop = e
        .submit(json!({"kind": "noop", "payload": {"ping": 1}}))
        .await;
    let done = e.wait(&noop, "succeeded", 10).await;
    let took = submitted.elapsed();
    let server_side = time(&done["finished_at"]) - time(&done["created_at"]);
    println!("noop beside {cores} heavy sha256 tasks: {took:?} (record: {server_side})");
    assert!(took < Duration::from_secs(1), "noop took {took:?}");

    let later_beat = wait_for(
        "the worker heartbeat to advance",
        Duration::from_secs(5),
        || async {
            let s = seen(&e.workers().await);
            (s > first_beat + chrono::Duration::milliseconds(1000)).then_some(s)
        },
    )
    .await;
    println!("heartbeat {first_beat} → {later_beat} while hashing");

    // Still hashing at least 3 s after they started, and reporting progress.
    for id in &heavy {
        let r = wait_for("3 s of hashing", Duration::from_secs(10), || async {
            let r = get(&e.http, &e.base, id).await;
            assert_eq!(r["state"], "running", "the hash is still running: {r}");
            (Utc::now() - time(&r["started_at"]) >= chrono::Duration::seconds(3)).then_some(r)
        })
        .await;
        assert!(
            r["progress"]["message"]
                .as_str()
                .unwrap()
                .contains("rounds"),
            "{r}"
        );
    }
    for id in &heavy {
        let res = e
            .http
            .post(format!("{}/v1/tasks/{id}/cancel", e.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    for id in &heavy {
        e.wait(id, "cancelled", 5).await;
    }
}

/// The response comes back as the result; a body over the cap is cut and flagged.
#[tokio::test]
async fn http_request_returns_the_response() {
    let target = Target::start().await;
    let e = env(
        |e| e.with("ERRAND__TASKS__HTTP_MAX_RESPONSE_BYTES", "1000"),
        &[],
    )
    .await;
    let echo = e
        .submit(json!({"kind": "http_request", "payload": {
            "method": "POST",
            "url": target.url("/echo?x=1"),
            "headers": {"X-Token": "t-42"},
            "body": {"order": 42}
        }}))
        .await;
    let big = e
        .submit(json!({"kind": "http_request", "payload": {"url": target.url("/big/5000")}}))
        .await;
    let text = e
        .submit(json!({"kind": "http_request", "payload": {"method": "PUT", "url": target.url("/echo"), "body": "plain words"}}))
        .await;

    let r = e.wait(&echo, "succeeded", 10).await["result"].clone();
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["body_truncated"], false);
    assert_eq!(r["headers"]["content-type"], "application/json");
    let seen: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/echo?x=1");
    assert_eq!(seen["headers"]["x-token"], "t-42");
    assert_eq!(seen["headers"]["content-type"], "application/json");
    assert_eq!(seen["body"], r#"{"order":42}"#);
    assert!(r["elapsed_ms"].is_u64());

    let r = e.wait(&big, "succeeded", 10).await["result"].clone();
    assert_eq!(r["body"].as_str().unwrap().len(), 1000);
    assert_eq!(r["body_truncated"], true);

    let r = e.wait(&text, "succeeded", 10).await["result"].clone();
    let seen: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["body"], "plain words");
    assert_eq!(seen["headers"]["content-type"], "text/plain; charset=utf-8");
}

/// 5xx, timeouts and refused connections are retried; 4xx and answers that are not HTTP
/// fail at once, after exactly one request.
#[tokio::test]
async fn http_request_retries_only_failures_that_may_pass() {
    let target = Target::start().await;
    let e = env(|e| e, &[]).await;
    let http = |url: String, extra: Value| {
        let mut payload = json!({"url": url});
        payload
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"kind": "http_request", "payload": payload, "max_attempts": 2})
    };
    let s503 = e.submit(http(target.url("/status/503"), json!({}))).await;
    let s404 = e.submit(http(target.url("/status/404"), json!({}))).await;
    let s429 = e.submit(http(target.url("/status/429"), json!({}))).await;
    let garbage = e.submit(http(target.url("/garbage"), json!({}))).await;
    let slow = e
        .submit(http(
            target.url("/delay/3000"),
            json!({"timeout_secs": 0.3}),
        ))
        .await;
    let nobody = e
        .submit(http(
            format!("http://127.0.0.1:{}/", free_port()),
            json!({}),
        ))
        .await;

    // Retryable: both attempts ran (the state passes through `retrying` between them).
    let r = e.wait(&s503, "failed", 15).await;
    assert_eq!(r["attempt"], 2, "{r}");
    assert_eq!(r["error"]["kind"], "http_status", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("503"),
        "{r}"
    );
    assert_eq!(target.hits("/status/503"), 2, "one request per attempt");

    let r = e.wait(&s404, "failed", 10).await;
    assert_eq!(r["attempt"], 1, "4xx is not retried: {r}");
    assert_eq!(r["error"]["kind"], "http_status");
    assert_eq!(target.hits("/status/404"), 1);

    let r = e.wait(&s429, "failed", 15).await;
    assert_eq!(r["attempt"], 2, "429 is retried: {r}");
    assert_eq!(r["error"]["kind"], "http_status", "{r}");

    let r = e.wait(&garbage, "failed", 10).await;
    assert_eq!(
        r["attempt"], 1,
        "an answer that is not HTTP is not retried: {r}"
    );
    assert_eq!(r["error"]["kind"], "invalid_response", "{r}");
    assert_eq!(target.hits("/garbage"), 1);

    let r = e.wait(&slow, "failed", 15).await;
    assert_eq!(r["attempt"], 2, "a timeout is retried: {r}");
    assert_eq!(r["error"]["kind"], "timeout", "{r}");

    let r = e.wait(&nobody, "failed", 15).await;
    assert_eq!(r["attempt"], 2, "a refused connection is retried: {r}");
    assert_eq!(r["error"]["kind"], "connect", "{r}");
}

/// Five requests that each take 300 ms finish together in about 300 ms, not 1.5 s; with
/// `concurrency: 1` they take the sum. A failed request is reported, not fatal.
#[tokio::test]
async fn fan_out_runs_its_requests_concurrently() {
    let target = Target::start().await;
    let e = env(|e| e, &[]).await;
    let five: Vec<Value> = (0..5)
        .map(|i| json!({"url": target.url(&format!("/delay/300?i={i}"))}))
        .collect();
    let together = e
        .submit(json!({"kind": "fan_out", "payload": {"requests": five}}))
        .await;
    let r = e.wait(&together, "succeeded", 10).await;
    let res = &r["result"];
    let total = res["total_ms"].as_u64().unwrap();
    println!("fan_out 5 × 300 ms: total {total} ms");
    assert!((300..750).contains(&total), "concurrent: {res}");
    assert_eq!(res["succeeded"], 5);
    assert_eq!(res["failed"], 0);
    for item in res["requests"].as_array().unwrap() {
        assert_eq!(item["status"], 200, "{item}");
        assert!(item["elapsed_ms"].as_u64().unwrap() >= 300, "{item}");
    }
    assert_eq!(r["progress"]["percent"], 100);
    assert_eq!(r["progress"]["message"], "5 of 5 requests done");

    let five: Vec<Value> = (0..5)
        .map(|_| json!({"url": target.url("/delay/300")}))
        .collect();
    let one_by_one = e
        .submit(json!({"kind": "fan_out", "payload": {"requests": five, "concurrency": 1}}))
        .await;
    let res = e.wait(&one_by_one, "succeeded", 10).await["result"].clone();
    let total = res["total_ms"].as_u64().unwrap();
    println!("fan_out 5 × 300 ms, concurrency 1: total {total} ms");
    assert!(total >= 1500, "one at a time: {res}");

    let mixed = e
        .submit(json!({"kind": "fan_out", "payload": {"requests": [
            {"url": target.url("/status/200")},
            {"url": target.url("/status/503")},
            {"url": format!("http://127.0.0.1:{}/", free_port())}
        ]}}))
        .await;
    let r = e.wait(&mixed, "succeeded", 10).await;
    let res = &r["result"];
    assert_eq!(r["attempt"], 1);
    assert_eq!(res["succeeded"], 1, "{res}");
    assert_eq!(res["failed"], 2, "{res}");
    assert_eq!(res["requests"][1]["status"], 503);
    assert_eq!(res["requests"][1]["error"]["retryable"], true);
    assert_eq!(res["requests"][2]["status"], Value::Null);
    assert_eq!(res["requests"][2]["error"]["kind"], "connect");
}

/// Over SMTP: one message per recipient with the subject, body and HTML alternative; a
/// recipient the server refuses for good is reported and the rest still get theirs; a
/// transient refusal makes the attempt retryable.
#[tokio::test]
async fn send_email_delivers_over_smtp() {
    let sink = SmtpSink::start().await;
    sink.refuse("gone@example.com", "550 5.1.1 no such user");
    sink.refuse("busy@example.com", "451 4.3.0 try again later");
    let port = sink.port().to_string();
    let e = env(
        |e| {
            e.with("ERRAND__EMAIL__TRANSPORT", "smtp")
                .with("ERRAND__EMAIL__SMTP__HOST", "127.0.0.1")
                .with("ERRAND__EMAIL__SMTP__PORT", &port)
                .with("ERRAND__EMAIL__SMTP__TLS", "none")
                .with("ERRAND__EMAIL__FROM", "Reports <reports@errand.test>")
        },
        &[],
    )
    .await;
    let id = e
        .submit(json!({"kind": "send_email", "payload": {
            "to": ["ada@example.com", "gone@example.com", "Grace Hopper <grace@example.com>"],
            "subject": "Your report is ready",
            "text": "Hello,\r\nthe report is ready.\r\n",
            "html": "<p>Hello, the <b>report</b> is ready.</p>"
        }}))
        .await;
    let r = e.wait(&id, "succeeded", 15).await;
    let res = &r["result"];
    assert_eq!(res["transport"], "smtp");
    assert_eq!(
        res["sent"],
        json!(["ada@example.com", "Grace Hopper <grace@example.com>"])
    );
    assert_eq!(res["rejected"][0]["to"], "gone@example.com");
    assert!(
        res["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no such user"),
        "{res}"
    );
    assert_eq!(r["progress"]["message"], "3 of 3 recipients done");

    let got = sink.messages();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].rcpt_to, ["ada@example.com"]);
    assert_eq!(got[1].rcpt_to, ["grace@example.com"]);
    for m in &got {
        assert_eq!(m.mail_from, "reports@errand.test");
        assert_eq!(m.header("Subject").as_deref(), Some("Your report is ready"));
        assert_eq!(
            m.header("From").as_deref(),
            Some("Reports <reports@errand.test>")
        );
        assert!(m.header("Message-ID").is_some(), "{m:?}");
        let body = m.body();
        assert!(body.contains("Hello,\r\nthe report is ready."), "{body}");
        assert!(
            body.contains("<p>Hello, the <b>report</b> is ready.</p>"),
            "{body}"
        );
        assert!(body.contains("text/html"), "{body}");
    }
    assert_eq!(got[0].header("To").as_deref(), Some("ada@example.com"));

    let busy = e
        .submit(json!({"kind": "send_email", "payload": {"to": "busy@example.com", "subject": "s", "text": "t"}}))
        .await;
    let r = e.wait(&busy, "retrying", 10).await;
    assert_eq!(r["error"]["kind"], "smtp_transient", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("0 of 1"),
        "{r}"
    );

    let all_gone = e
        .submit(json!({"kind": "send_email", "payload": {"to": "gone@example.com", "subject": "s", "text": "t"}}))
        .await;
    let r = e.wait(&all_gone, "failed", 10).await;
    assert_eq!(r["attempt"], 1, "a permanent refusal is not retried: {r}");
    assert_eq!(r["error"]["kind"], "rejected", "{r}");
    assert_eq!(sink.messages().len(), 2, "nothing more was delivered");
}

/// The file transport writes one .eml file per recipient into the configured directory.
#[tokio::test]
async fn send_email_file_transport_writes_eml_files() {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("mail");
    let e = env(
        |e| {
            e.with("ERRAND__EMAIL__TRANSPORT", "file")
                .with("ERRAND__EMAIL__FILE_DIR", mail_dir.to_str().unwrap())
        },
        &[],
    )
    .await;
    let id = e
        .submit(json!({"kind": "send_email", "payload": {
            "to": ["ada@example.com", "grace@example.com"],
            "subject": "Filed",
            "text": "Written to disk.\r\n"
        }}))
        .await;
    let r = e.wait(&id, "succeeded", 15).await;
    assert_eq!(r["result"]["transport"], "file");
    assert_eq!(r["result"]["sent"].as_array().unwrap().len(), 2);

    let mut files: Vec<String> = std::fs::read_dir(&mail_dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    files.sort_by_key(|f| f.contains("grace@"));
    assert_eq!(files.len(), 2);
    for (file, to) in files.iter().zip(["ada@example.com", "grace@example.com"]) {
        assert!(file.contains(&format!("To: {to}\r\n")), "{file}");
        assert!(file.contains("Subject: Filed\r\n"), "{file}");
        assert!(
            file.contains("From: errand <errand@localhost>\r\n"),
            "{file}"
        );
        assert!(file.contains("\r\n\r\nWritten to disk.\r\n"), "{file}");
    }
}

/// `tasks.http_destinations` with `deny_private` (production's default): a literal private
/// address is refused at submit naming the field; a name that resolves to one, and a
/// redirect to one, fail the task for good at run time without the request being sent;
/// `allow` makes exceptions.
#[tokio::test]
async fn http_destinations_refuse_private_addresses_at_submit_and_at_run_time() {
    let target = Target::start().await;
    let e = env(
        |e| {
            e.with("ERRAND__TASKS__HTTP_DESTINATIONS__DENY_PRIVATE", "true")
                .with("ERRAND__TASKS__HTTP_DESTINATIONS__ALLOW", "127.0.0.1")
        },
        &[],
    )
    .await;
    let port = target.port;
    // 127.0.0.1 is allowed; the rest of loopback is not.
    let (status, body) = e
        .refused(json!({"kind": "http_request", "payload": {"url": format!("http://127.0.0.2:{port}/echo")}}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "payload.url");
    assert!(
        body["detail"].as_str().unwrap().contains("deny_private"),
        "{body}"
    );
    let (status, body) = e
        .refused(json!({"kind": "fan_out", "payload": {"requests": [{"url": target.url("/echo")}, {"url": "http://[::1]/"}]}}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "payload.requests[1].url");

    let allowed = e
        .submit(json!({"kind": "http_request", "payload": {"url": target.url("/echo")}}))
        .await;
    e.wait(&allowed, "succeeded", 10).await;
    assert_eq!(target.hits("/echo"), 1);

    // A redirect from the allowed address to a refused one is not followed.
    let redirected = e
        .submit(json!({"kind": "http_request", "payload": {"url": target.url(&format!("/redirect/127.0.0.2/{port}"))}}))
        .await;
    let r = e.wait(&redirected, "failed", 10).await;
    assert_eq!(r["error"]["kind"], "destination_denied", "{r}");
    assert_eq!(r["attempt"], 1, "refused for good, not retried");
    assert_eq!(target.hits(&format!("/redirect/127.0.0.2/{port}")), 1);
    assert_eq!(target.hits("/echo"), 1, "the redirect was not followed");

    // With nothing allowed, `localhost` passes submit (a name) but resolves to refused
    // addresses only, so the worker never connects.
    let strict = env(
        |e| e.with("ERRAND__TASKS__HTTP_DESTINATIONS__DENY_PRIVATE", "true"),
        &[],
    )
    .await;
    let by_name = strict
        .submit(json!({"kind": "http_request", "payload": {"url": format!("http://localhost:{port}/echo")}}))
        .await;
    let r = strict.wait(&by_name, "failed", 10).await;
    assert_eq!(r["error"]["kind"], "destination_denied", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("localhost"),
        "{r}"
    );
    let fan = strict
        .submit(json!({"kind": "fan_out", "payload": {"requests": [{"url": format!("http://localhost:{port}/echo")}]}}))
        .await;
    let r = strict.wait(&fan, "succeeded", 10).await["result"].clone();
    assert_eq!(
        r["requests"][0]["error"]["kind"], "destination_denied",
        "{r}"
    );
    assert_eq!(target.hits("/echo"), 1, "no request reached the target");
}

/// A small HTTP/1.1 server on a free port, answering by path:
/// `/status/{code}`, `/delay/{ms}` (200 after that long), `/echo` (the request as JSON),
/// `/big/{bytes}`, `/garbage` (an answer that is not HTTP). Counts requests per path.
struct Target {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Target {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let counted = hits.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, counted.clone()));
            }
        });
        Self { port, hits, accept }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests seen for `path` (query ignored).
    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn answer(mut stream: tokio::net::TcpStream, hits: Arc<Mutex<HashMap<String, usize>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let mut headers = serde_json::Map::new();
    for l in lines.filter(|l| !l.is_empty()) {
        if let Some((n, v)) = l.split_once(':') {
            headers.insert(n.trim().to_lowercase(), json!(v.trim()));
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.as_str()?.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;

    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (status, content_type, out) = match segments.as_slice() {
        ["status", code] => (
            code.parse().unwrap_or(500),
            "text/plain",
            format!("status {code}"),
        ),
        ["delay", ms] => {
            // The server's own latency, what fan_out overlaps.
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            (200, "text/plain", "slept".to_owned())
        }
        ["echo"] => (
            200,
            "application/json",
            json!({"method": method, "path": target, "headers": headers, "body": body}).to_string(),
        ),
        ["big", n] => (200, "text/plain", "x".repeat(n.parse().unwrap_or(0))),
        ["redirect", host, port] => {
            let response = format!(
                "HTTP/1.1 302 Found\r\nlocation: http://{host}:{port}/echo\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(response.as_bytes()).await;
            return;
        }
        ["garbage"] => {
            let _ = stream.write_all(b"this is not HTTP at all\r\n\r\n").await;
            return;
        }
        _ => (404, "text/plain", "no such path".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status} Whatever\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
        out.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}
