//! Completion webhooks end to end: the real errand-api and errand-worker, a real Redis, and
//! a receiver (tests/support/webhook_receiver.py) that verifies every signature with the
//! third-party `standardwebhooks` package from PyPI, installed into a venv under target/ on
//! first use. Without python3 the tests say so and pass vacuously; CI has it.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use errand_testkit::{Errand, Proc, RedisServer, api, wait_for};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The Standard Webhooks reference test secret (24 bytes).
const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// 32 bytes 0x00..0x1f.
const NEW: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Known to no errand process: a receiver holding only this verifies nothing.
const OTHER: &str = "whsec_eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg=";

const STANDARDWEBHOOKS: &str = "standardwebhooks==1.1.0";

/// The venv's python with `standardwebhooks` importable, made on first use; None (the test
/// is skipped, saying why) when python3 is not installed.
fn python() -> Option<PathBuf> {
    let target = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target"));
    let venv = target.join("webhook-venv");
    let py = venv.join("bin/python");
    let ready = |py: &PathBuf| {
        std::process::Command::new(py)
            .args(["-c", "import standardwebhooks"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&py) {
        return Some(py);
    }
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: python3 is not installed; the webhook tests need it for the \
             standardwebhooks verifier"
        );
        return None;
    }
    // Built aside and renamed into place, so tests starting at once never see half a venv.
    // Named per process and thread: `cargo test` runs these tests as threads of one process.
    let tmp = target.join(format!(
        "webhook-venv.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let run = |cmd: &mut std::process::Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&tmp),
        "python3 -m venv",
    );
    run(
        std::process::Command::new(tmp.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            STANDARDWEBHOOKS,
        ]),
        "pip install standardwebhooks",
    );
    if !ready(&py) {
        // Left broken by an interrupted run or a python3 upgrade.
        let _ = std::fs::remove_dir_all(&venv);
    }
    if std::fs::rename(&tmp, &venv).is_err() {
        // Another test got there first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(
        ready(&py),
        "{} cannot import standardwebhooks",
        py.display()
    );
    Some(py)
}

/// The verifying receiver: answers per `plan`, logs every request it got.
struct Receiver {
    _child: tokio::process::Child,
    port: u16,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start(plan: &str, secrets: &[&str]) -> Option<Self> {
        let py = python()?;
        let mut cmd = tokio::process::Command::new(py);
        cmd.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/webhook_receiver.py"
        ))
        .args(["--plan", plan])
        .stdout(Stdio::piped())
        .kill_on_drop(true);
        for s in secrets {
            cmd.args(["--secret", s]);
        }
        let mut child = cmd.spawn().expect("start the receiver");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("the receiver prints its port")
            .unwrap()
            .expect("a port line")
            .trim()
            .parse()
            .expect("a port");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock()
                    .unwrap()
                    .push(serde_json::from_str::<Value>(&line).expect("a JSON line"));
            }
        });
        Some(Self {
            _child: child,
            port,
            seen,
        })
    }

    fn url(&self, host: &str) -> String {
        format!("http://{host}:{}/hook", self.port)
    }

    fn requests(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }

    async fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Value> {
        wait_for(&format!("{n} webhook requests"), timeout, || async {
            let r = self.requests();
            (r.len() >= n).then_some(r)
        })
        .await
    }
}

/// A deployment that signs with `secrets` and may reach 127.0.0.1 (the receiver), with
/// retries quick enough for a test.
fn deployment(redis: &RedisServer, secrets: &str) -> Errand {
    Errand::new(redis)
        .with("ERRAND__WEBHOOKS__SECRETS", secrets)
        .with("ERRAND__WEBHOOKS__DESTINATIONS__ALLOW", "127.0.0.1")
        .with("ERRAND__WEBHOOKS__INITIAL_RETRY_MS", "400")
        .with("ERRAND__WEBHOOKS__POLL_MS", "50")
}

async fn submit_raw(http: &reqwest::Client, base: &str, body: Value) -> (u16, Value) {
    let res = http
        .post(format!("{base}/v1/tasks"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn wait_webhook(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, Duration::from_secs(20), || async {
        let r = api::get(http, base, id).await;
        pred(&r["webhook"]).then_some(r)
    })
    .await
}

/// The receiver answers 500, 500, then 200: errand retries after 400 ms and then 800 ms
/// (doubling), every attempt carries the same webhook-id and a signature the third-party
/// verifier accepts, the record shows the delivery pending with the last 500 and then
/// delivered after 3 attempts, and the task's own state never moves.
#[tokio::test]
async fn deliveries_are_signed_retried_after_500s_and_recorded_on_the_task() {
    let Some(rx) = Receiver::start("500,500,200", &[OLD]).await else {
        return;
    };
    let redis = RedisServer::start().await;
    let errand = deployment(&redis, OLD);
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let (http, base) = (reqwest::Client::new(), errand.base_url());

    let task = api::submit(
        &http,
        &base,
        json!({"kind": "noop", "callback": {"url": rx.url("127.0.0.1"), "events": ["succeeded"]}}),
    )
    .await;
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(task["callback"]["url"], rx.url("127.0.0.1"));
    assert_eq!(task["callback"]["events"], json!(["succeeded"]));
    assert_eq!(task["webhook"], Value::Null);

    let pending = wait_webhook(&http, &base, &id, "a failed attempt on the record", |w| {
        w["state"] == "pending" && w["last_status"] == 500
    })
    .await;
    assert_eq!(
        pending["state"], "succeeded",
        "a webhook failure leaves the task alone"
    );
    assert!(
        pending["webhook"]["next_attempt_at"].is_string(),
        "{pending}"
    );
    assert_eq!(pending["webhook"]["last_error"], "answered 500: ok");

    let seen = rx.wait_requests(3, Duration::from_secs(20)).await;
    let done = wait_webhook(&http, &base, &id, "the delivery recorded", |w| {
        w["state"] == "delivered"
    })
    .await;
    let w = &done["webhook"];
    assert_eq!(w["attempts"], 3, "{done}");
    assert_eq!(w["last_status"], 200);
    assert_eq!(w["last_error"], Value::Null);
    assert_eq!(w["event"], "succeeded");
    assert!(w["delivered_at"].is_string());
    assert_eq!(done["state"], "succeeded");

    let statuses: Vec<&str> = seen.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["500", "500", "200"]);
    for r in &seen {
        assert_eq!(
            r["verified"],
            json!([true]),
            "standardwebhooks verified {r}"
        );
        assert_eq!(r["id"], w["id"], "one webhook-id for every attempt");
        let body = &r["body"];
        assert_eq!(body["type"], "task.succeeded");
        assert_eq!(body["timestamp"], done["finished_at"]);
        assert_eq!(body["data"]["id"], id.as_str());
        assert_eq!(body["data"]["state"], "succeeded");
        assert_eq!(body["data"]["kind"], "noop");
        assert_eq!(body["data"]["result"], done["result"]);
        assert_eq!(body["data"]["attempt"], 1);
        assert!(body["data"].get("payload").is_none());
    }
    assert_eq!(seen[0]["body"], seen[2]["body"], "the same body every time");
    let at: Vec<f64> = seen.iter().map(|r| r["at"].as_f64().unwrap()).collect();
    let gaps_ms: Vec<u64> = at
        .windows(2)
        .map(|w| ((w[1] - w[0]) * 1000.0) as u64)
        .collect();
    println!(
        "webhooks[retries]: attempts 3, gaps between attempts {gaps_ms:?} ms (configured 400, 800)"
    );
    assert!(
        gaps_ms[0] >= 390 && gaps_ms[1] >= 790,
        "backoff doubles: {gaps_ms:?}"
    );
    assert!(gaps_ms[1] > gaps_ms[0], "{gaps_ms:?}");
    // Nothing more is sent once delivered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.requests().len(), 3);
}

/// With two secrets configured, every delivery carries a signature by each: a receiver
/// holding only the old one and a receiver holding only the new one both verify it (the
/// rotation window), and one holding neither does not.
#[tokio::test]
async fn rotated_secrets_each_sign_every_delivery() {
    let Some(rx) = Receiver::start("", &[OLD, NEW, OTHER]).await else {
        return;
    };
    let redis = RedisServer::start().await;
    let errand = deployment(&redis, &format!("{OLD},{NEW}"));
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let (http, base) = (reqwest::Client::new(), errand.base_url());

    let task = api::submit(
        &http,
        &base,
        json!({"kind": "chaos", "payload": {"mode": "fail"}, "max_attempts": 1, "callback": {"url": rx.url("127.0.0.1")}}),
    )
    .await;
    let id = task["id"].as_str().unwrap();
    assert_eq!(
        task["callback"]["events"],
        json!(["succeeded", "failed", "cancelled"]),
        "every ending by default"
    );
    let seen = rx.wait_requests(1, Duration::from_secs(20)).await;
    assert_eq!(
        seen[0]["verified"],
        json!([true, true, false]),
        "{}",
        seen[0]
    );
    assert_eq!(
        seen[0]["signature"].as_str().unwrap().split(' ').count(),
        2,
        "one v1 signature per secret"
    );
    assert_eq!(seen[0]["body"]["type"], "task.failed");
    assert!(seen[0]["body"]["data"]["error"]["kind"].is_string());
    let done = wait_webhook(&http, &base, id, "the delivery recorded", |w| {
        w["state"] == "delivered"
    })
    .await;
    assert_eq!(done["state"], "failed");
    assert_eq!(done["webhook"]["event"], "failed");
}

/// By default (`webhooks.destinations.deny_private`) a callback to a literal loopback
/// address is refused at submit (422 naming callback.url), and one whose name resolves to
/// loopback is accepted but never sent: the worker refuses every address and gives the
/// delivery up at once, the task itself unharmed. Malformed callbacks name their field.
#[tokio::test]
async fn callbacks_to_private_addresses_are_refused_by_default() {
    let Some(rx) = Receiver::start("", &[OLD]).await else {
        return;
    };
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis).with("ERRAND__WEBHOOKS__SECRETS", OLD);
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let (http, base) = (reqwest::Client::new(), errand.base_url());

    for (callback, field, says) in [
        (
            json!({"url": rx.url("127.0.0.1")}),
            "callback.url",
            "webhooks.destinations.deny_private",
        ),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data"}),
            "callback.url",
            "link-local",
        ),
        (
            json!({"url": "http://10.0.0.8/hook"}),
            "callback.url",
            "private",
        ),
        (
            json!({"url": "ftp://hooks.example.com/x"}),
            "callback.url",
            "scheme",
        ),
        (json!({"url": "hooks"}), "callback.url", "not a URL"),
        (
            json!({"url": "https://hooks.example.com/", "events": []}),
            "callback.events",
            "at least one",
        ),
    ] {
        let (status, body) =
            submit_raw(&http, &base, json!({"kind": "noop", "callback": callback})).await;
        assert_eq!(status, 422, "{callback}: {body}");
        assert_eq!(body["field"], field, "{body}");
        assert!(body["detail"].as_str().unwrap().contains(says), "{body}");
    }
    let (status, body) = submit_raw(
        &http,
        &base,
        json!({"kind": "noop", "callback": {"url": "https://hooks.example.com/", "events": ["progress"]}}),
    )
    .await;
    assert!(status == 400 || status == 422, "{status} {body}");
    assert!(
        body["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("callback.events")),
        "{body}"
    );
    // A batch names the task too, and enqueues nothing.
    let res = http
        .post(format!("{base}/v1/tasks/batch"))
        .json(&json!({"tasks": [
            {"kind": "noop", "callback": {"url": "https://hooks.example.com/"}},
            {"kind": "noop", "callback": {"url": rx.url("127.0.0.1")}},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["field"], "tasks[1].callback.url", "{body}");
    assert_eq!(rx.requests().len(), 0);

    // A name passes submit; every address it resolves to is refused at delivery.
    let task = api::submit(
        &http,
        &base,
        json!({"kind": "noop", "callback": {"url": rx.url("localhost")}}),
    )
    .await;
    let id = task["id"].as_str().unwrap();
    let done = wait_webhook(&http, &base, id, "the delivery given up", |w| {
        w["state"] == "failed"
    })
    .await;
    let w = &done["webhook"];
    assert_eq!(
        w["attempts"], 1,
        "a refused destination is not retried: {done}"
    );
    assert_eq!(w["last_status"], Value::Null);
    let why = w["last_error"].as_str().unwrap();
    assert!(
        why.contains("refused") && why.contains("localhost"),
        "{why}"
    );
    assert!(why.contains("webhooks.destinations"), "{why}");
    assert_eq!(done["state"], "succeeded");
    assert_eq!(rx.requests().len(), 0, "nothing reached the receiver");
}

/// A worker SIGKILLed while its delivery attempt is in flight (the receiver holds the
/// request open) loses nothing: the claim lapses after webhooks.timeout_ms + 5 s and
/// another worker delivers it, under the same webhook-id, verified.
#[tokio::test]
async fn a_delivery_in_flight_on_a_killed_worker_is_sent_by_another() {
    let Some(rx) = Receiver::start("hang,200", &[OLD]).await else {
        return;
    };
    let redis = RedisServer::start().await;
    let errand = deployment(&redis, OLD).with("ERRAND__WEBHOOKS__TIMEOUT_MS", "3000");
    let _api = errand.spawn_api().await;
    let mut first: Proc = errand.spawn_worker(&[]);
    let (http, base) = (reqwest::Client::new(), errand.base_url());

    let task = api::submit(
        &http,
        &base,
        json!({"kind": "noop", "callback": {"url": rx.url("127.0.0.1")}}),
    )
    .await;
    let id = task["id"].as_str().unwrap();
    rx.wait_requests(1, Duration::from_secs(20)).await;
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).await;
    let killed = Instant::now();
    let _second = errand.spawn_worker(&[]);

    let seen = rx.wait_requests(2, Duration::from_secs(30)).await;
    let redelivered = killed.elapsed();
    let done = wait_webhook(&http, &base, id, "the delivery recorded", |w| {
        w["state"] == "delivered"
    })
    .await;
    println!(
        "webhooks[killed-worker]: delivered by the second worker {} ms after the kill (lease {} ms)",
        redelivered.as_millis(),
        3000 + 5000
    );
    assert_eq!(seen[0]["status"], "hang");
    assert_eq!(seen[1]["status"], "200");
    assert_eq!(seen[1]["verified"], json!([true]));
    assert_eq!(seen[0]["id"], seen[1]["id"]);
    assert_eq!(done["webhook"]["attempts"], 2, "{done}");
    assert_eq!(done["state"], "succeeded");
}
