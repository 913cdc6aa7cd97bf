//! Observability end to end: a real Prometheus scraping the real api and workers, and a real
//! OTLP/HTTP receiver decoding the spans they export (docs/observability.md).
//!
//! Prometheus comes from `scripts/ensure-prometheus.sh` (Debian's `prometheus` package),
//! which the tests run themselves when it is missing.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use errand_testkit::{Errand, Proc, RedisServer, free_port, wait_for};
use nix::sys::signal::Signal;
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value, trace::v1::Span,
};
use prost::Message;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::{Child, Command},
};

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn ensure_prometheus() {
    let ok = std::process::Command::new(repo().join("scripts/ensure-prometheus.sh"))
        .status()
        .expect("run scripts/ensure-prometheus.sh");
    assert!(ok.success(), "scripts/ensure-prometheus.sh failed");
}

/// A real Prometheus in a temp dir, scraping `targets` (job name → host:port list) every
/// second; killed on drop.
struct Prometheus {
    _child: Child,
    _dir: tempfile::TempDir,
    base: String,
    http: reqwest::Client,
}

impl Prometheus {
    async fn start(targets: &[(&str, Vec<String>)]) -> Self {
        ensure_prometheus();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n",
        );
        for (job, addrs) in targets {
            let list = addrs
                .iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(", ");
            config.push_str(&format!(
                "  - job_name: '{job}'\n    static_configs:\n      - targets: [{list}]\n"
            ));
        }
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).expect("write config");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        let p = Self {
            _child: child,
            _dir: dir,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        wait_for(
            "prometheus to be ready",
            Duration::from_secs(30),
            || async {
                let r = p
                    .http
                    .get(format!("{}/-/ready", p.base))
                    .send()
                    .await
                    .ok()?;
                r.status().is_success().then_some(())
            },
        )
        .await;
        p
    }

    /// The instant-vector result of `q`, as (labels, value) pairs.
    async fn query(&self, q: &str) -> Vec<(Value, f64)> {
        let r: Value = self
            .http
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", q)])
            .send()
            .await
            .expect("query prometheus")
            .json()
            .await
            .expect("prometheus answer");
        assert_eq!(r["status"], "success", "{q}: {r}");
        r["data"]["result"]
            .as_array()
            .expect("vector")
            .iter()
            .map(|s| {
                let v = s["value"][1].as_str().unwrap().parse().unwrap();
                (s["metric"].clone(), v)
            })
            .collect()
    }

    /// The single value `q` yields (a `sum`, `max`, …); `None` when it yields nothing.
    async fn value(&self, q: &str) -> Option<f64> {
        let r = self.query(q).await;
        assert!(r.len() <= 1, "{q} gave {} series", r.len());
        r.first().map(|(_, v)| *v)
    }
}

async fn exposition(addr: &str) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body")
}

/// `promtool check metrics` on an exposition: the format and the naming conventions.
async fn promtool_check(name: &str, text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics on the {name}'s exposition: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The alert rules docs/observability.md shows: `promtool check rules` accepts them, and
/// every `expr` evaluates on the Prometheus that scraped errand.
async fn check_documented_alerts(prom: &Prometheus) {
    let doc = std::fs::read_to_string(repo().join("docs/observability.md")).expect("docs");
    let start = doc.find("```yaml\ngroups:").expect("an alert rules block") + "```yaml\n".len();
    let rules = &doc[start..start + doc[start..].find("```").expect("block end")];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .await
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Each expr is one line after `expr:`, or the indented lines under `expr: |`.
    let lines: Vec<&str> = rules.lines().collect();
    let mut exprs = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(e) = l.trim().strip_prefix("expr:") else {
            continue;
        };
        if e.trim() == "|" {
            let indent = l.len() - l.trim_start().len();
            let body: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|b| b.len() - b.trim_start().len() > indent)
                .map(|b| b.trim())
                .collect();
            exprs.push(body.join(" "));
        } else {
            exprs.push(e.trim().to_owned());
        }
    }
    assert!(exprs.len() >= 6, "{exprs:?}");
    for e in &exprs {
        // `query` asserts Prometheus answered `success`.
        let firing = prom.query(e).await;
        println!("alert expr {e} -> {} series", firing.len());
    }
    // With the work done and both workers alive, none of these fires but the failure ratio
    // (40 of 200 tasks failed on purpose).
    assert!(
        prom.query(&exprs[3]).await.is_empty(),
        "no live workers must not fire"
    );
    assert!(
        !prom.query(&exprs[2]).await.is_empty(),
        "the 20 % failure ratio fires"
    );
}

async fn terminal_count(http: &reqwest::Client, base: &str) -> u64 {
    let q: Value = http
        .get(format!("{base}/v1/queues"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    q["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| {
            ["succeeded", "failed", "cancelled"]
                .iter()
                .map(|s| q["counts"][s].as_u64().unwrap_or(0))
                .sum::<u64>()
        })
        .sum()
}

/// 200 tasks (160 succeed, 40 fail after one retry), 4 cancelled before they run, and a
/// schedule firing every second, on one api and two workers scraped by a real Prometheus:
/// every counter and histogram Prometheus holds afterwards has the exact value the work
/// implies, summed over the processes (no double counting), and `promtool check metrics`
/// accepts both expositions.
#[tokio::test]
async fn prometheus_scrapes_api_and_workers_and_counts_every_task_once() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let api_proc = errand.spawn_api().await;
    let mut workers: Vec<Proc> = Vec::new();
    let mut worker_addrs = Vec::new();
    for _ in 0..2 {
        let (p, addr) = errand.spawn_worker_with_metrics(&[]).await;
        workers.push(p);
        worker_addrs.push(addr.to_string());
    }
    let api_addr = format!("127.0.0.1:{}", errand.api_port());
    let prom = Prometheus::start(&[
        ("errand-api", vec![api_addr.clone()]),
        ("errand-worker", worker_addrs.clone()),
    ])
    .await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    wait_for("all three targets up", Duration::from_secs(30), || async {
        (prom.value("sum(up)").await == Some(3.0)).then_some(())
    })
    .await;

    // 100 one by one (60 succeed, 40 fail twice), 100 in one batch (all succeed).
    for i in 0..100 {
        let body = if i % 5 < 3 {
            json!({"kind": "sleep", "payload": {"duration_secs": 0.05}})
        } else {
            json!({"kind": "chaos", "payload": {"mode": "fail"}, "max_attempts": 2})
        };
        errand_testkit::api::submit(&http, &base, body).await;
    }
    let batch: Vec<Value> = (0..100)
        .map(|_| json!({"kind": "sleep", "payload": {"duration_secs": 0.05}}))
        .collect();
    let res = http
        .post(format!("{base}/v1/tasks/batch"))
        .json(&json!({ "tasks": batch }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // Four that never run: cancelled by the api while they wait for a far-off time.
    for _ in 0..4 {
        let r = errand_testkit::api::submit(
            &http,
            &base,
            json!({"kind": "sleep", "payload": {"duration_secs": 1}, "delay_secs": 3600}),
        )
        .await;
        let id = r["id"].as_str().unwrap();
        let res = http
            .post(format!("{base}/v1/tasks/{id}/cancel"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    // A schedule every second, disabled after it fired a few times.
    let res = http
        .post(format!("{base}/v1/schedules"))
        .json(&json!({"id": "tick", "cron": "*/1 * * * * *", "kind": "noop", "payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    wait_for("204 tasks to end", Duration::from_secs(60), || async {
        (terminal_count(&http, &base).await >= 204).then_some(())
    })
    .await;
    let schedule = wait_for(
        "the schedule to fire 3 times",
        Duration::from_secs(15),
        || async {
            let s: Value = http
                .get(format!("{base}/v1/schedules/tick"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (s["run_count"].as_u64()? >= 3).then_some(())
        },
    );
    schedule.await;
    let res = http
        .post(format!("{base}/v1/schedules/tick/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let fired = {
        let s: Value = http
            .get(format!("{base}/v1/schedules/tick"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        s["run_count"].as_u64().unwrap() as f64
    };
    wait_for(
        "every fired task to end",
        Duration::from_secs(15),
        || async { (terminal_count(&http, &base).await >= 204 + fired as u64).then_some(()) },
    )
    .await;

    // Every target scraped again after the work ended: what Prometheus holds is final.
    let done = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    wait_for(
        "a scrape of every target after the work",
        Duration::from_secs(20),
        || async {
            let last = prom.value("min(timestamp(up))").await?;
            (last > done + 1.0).then_some(())
        },
    )
    .await;

    let mut seen = Vec::new();
    for (q, want) in [
        ("sum(errand_kinds_submitted_total)", 204.0),
        ("sum(errand_kinds_submitted_total{kind=\"chaos\"})", 40.0),
        ("sum(errand_kinds_started_total{kind=\"sleep\"})", 160.0),
        ("sum(errand_kinds_started_total{kind=\"chaos\"})", 80.0),
        ("sum(errand_kinds_succeeded_total{kind=\"sleep\"})", 160.0),
        ("sum(errand_kinds_succeeded_total{kind=\"chaos\"})", 0.0),
        ("sum(errand_kinds_retried_total{kind=\"chaos\"})", 40.0),
        ("sum(errand_kinds_failed_total{kind=\"chaos\"})", 40.0),
        ("sum(errand_kinds_failed_total{kind=\"sleep\"})", 0.0),
        ("sum(errand_kinds_cancelled_total{job=\"errand-api\"})", 4.0),
        ("sum(errand_kinds_started_total{kind=\"noop\"})", fired),
        ("sum(errand_kinds_succeeded_total{kind=\"noop\"})", fired),
        ("sum(errand_schedules_fired_total)", fired),
        ("sum(errand_kinds_recovered_total)", 0.0),
        // Histograms: one run-time sample per attempt, one wait sample per attempt.
        (
            "sum(errand_task_run_duration_seconds_count{kind=\"sleep\",outcome=\"succeeded\"})",
            160.0,
        ),
        (
            "sum(errand_task_run_duration_seconds_count{kind=\"chaos\",outcome=\"retried\"})",
            40.0,
        ),
        (
            "sum(errand_task_run_duration_seconds_count{kind=\"chaos\",outcome=\"failed\"})",
            40.0,
        ),
        // A 50 ms sleep never runs under 25 ms, and all of them ran within 10 s.
        (
            "sum(errand_task_run_duration_seconds_bucket{kind=\"sleep\",le=\"0.025\"})",
            0.0,
        ),
        (
            "sum(errand_task_run_duration_seconds_bucket{kind=\"sleep\",le=\"10\"})",
            160.0,
        ),
        (
            "sum(errand_task_queue_wait_seconds_count{kind=~\"sleep|chaos\"})",
            240.0,
        ),
        // Redis-derived gauges: the same on every api replica, hence max.
        (
            "max(errand_queue_tasks{state=\"succeeded\"})",
            160.0 + fired,
        ),
        ("max(errand_queue_tasks{state=\"failed\"})", 40.0),
        ("max(errand_queue_tasks{state=\"cancelled\"})", 4.0),
        ("max(errand_queue_tasks{state=\"queued\"})", 0.0),
        ("max(errand_workers_live)", 2.0),
        ("max(errand_workers_slots{queue=\"default\"})", 32.0),
        ("sum(errand_worker_slots{queue=\"default\"})", 32.0),
        ("sum(errand_worker_busy_slots)", 0.0),
        ("max(errand_redis_up)", 1.0),
        (
            "sum(errand_http_requests_total{method=\"POST\",route=\"/v1/tasks\",status=\"202\"})",
            104.0,
        ),
        (
            "sum(errand_http_requests_total{method=\"POST\",route=\"/v1/tasks/batch\",status=\"202\"})",
            1.0,
        ),
        (
            "sum(errand_http_requests_total{route=\"/v1/tasks/{id}/cancel\",status=\"200\"})",
            4.0,
        ),
        (
            "sum(errand_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/tasks\"})",
            104.0,
        ),
        ("sum(errand_redis_call_errors_total) or vector(0)", 0.0),
    ] {
        let got = prom.value(q).await;
        seen.push(format!("{q} = {got:?}"));
        assert_eq!(got, Some(want), "{q}");
    }
    // A task id is never a label: the cancel route is counted under its template only.
    let routes = prom
        .query("count by (route) (errand_http_requests_total)")
        .await;
    assert!(
        routes
            .iter()
            .all(|(m, _)| !m["route"].as_str().unwrap().contains("01")),
        "{routes:?}"
    );
    // Latency histograms have samples where they should.
    for q in [
        "sum(errand_redis_call_duration_seconds_count{job=\"errand-worker\",op=\"fetch\"})",
        "sum(errand_redis_call_duration_seconds_count{job=\"errand-worker\",op=\"finish\"})",
        "sum(errand_redis_call_duration_seconds_count{job=\"errand-api\",op=\"submit\"})",
    ] {
        let got = prom.value(q).await.unwrap_or(0.0);
        seen.push(format!("{q} = {got}"));
        assert!(got > 0.0, "{q} = {got}");
    }
    let p50 = prom
        .value("histogram_quantile(0.5, sum by (le) (errand_task_run_duration_seconds_bucket{kind=\"sleep\"}))")
        .await
        .unwrap();
    seen.push(format!("p50 sleep run time = {p50}"));
    assert!((0.05..=0.1).contains(&p50), "p50 of a 50 ms sleep: {p50}");
    for line in &seen {
        println!("prometheus: {line}");
    }

    check_documented_alerts(&prom).await;
    promtool_check("api", &exposition(&api_addr).await).await;
    promtool_check("worker", &exposition(&worker_addrs[0]).await).await;
    drop(api_proc);
}

/// A worker killed mid-task: the surviving worker's upkeep re-queues the task and counts
/// one lost-worker recovery; the attempt it then runs is counted as its own start.
#[tokio::test]
async fn a_lost_workers_task_is_counted_as_one_recovery_by_the_process_that_recovered_it() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let doomed = errand.spawn_worker(&[]);
    let r = errand_testkit::api::submit(
        &http,
        &base,
        json!({"kind": "sleep", "payload": {"duration_secs": 1}}),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_owned();
    errand_testkit::api::wait_state(&http, &base, &id, "running", Duration::from_secs(10)).await;
    doomed.signal(Signal::SIGKILL);
    let (_survivor, addr) = errand.spawn_worker_with_metrics(&[]).await;
    let addr = addr.to_string();
    errand_testkit::api::wait_state(&http, &base, &id, "succeeded", Duration::from_secs(20)).await;
    let sample = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    // The success is counted right after its finish lands.
    wait_for(
        "the survivor's counters",
        Duration::from_secs(5),
        || async {
            let text = exposition(&addr).await;
            (sample(&text, "errand_kinds_succeeded_total{") == 1.0).then_some(text)
        },
    )
    .await;
    let text = exposition(&addr).await;
    // The api runs upkeep too (for HTTP workers), so either process may be the one that
    // re-queued it; the recovery is counted once, by that one, under the same name.
    let api_text = exposition(base.trim_start_matches("http://")).await;
    let recovered = sample(&text, "errand_kinds_recovered_total")
        + sample(&api_text, "errand_kinds_recovered_total");
    assert_eq!(recovered, 1.0, "worker:\n{text}\napi:\n{api_text}");
    assert_eq!(sample(&text, "errand_kinds_started_total{"), 1.0, "{text}");
}

/// What the test's OTLP/HTTP receiver got: every span of every export request.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

impl Received {
    fn spans(&self) -> Vec<(String, Span)> {
        self.0.lock().unwrap().clone()
    }
}

/// A minimal OTLP/HTTP receiver: HTTP/1.1 POSTs with a protobuf body (keep-alive), each
/// decoded as an `ExportTraceServiceRequest`; answers 200 with an empty response message.
async fn otlp_receiver() -> (u16, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Received::default();
    let sink = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 8192];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
                    if head.starts_with("post /v1/traces") {
                        let req = ExportTraceServiceRequest::decode(body.as_slice())
                            .expect("an OTLP protobuf export request");
                        let mut out = sink.0.lock().unwrap();
                        for rs in req.resource_spans {
                            let service = rs
                                .resource
                                .iter()
                                .flat_map(|r| &r.attributes)
                                .find(|a| a.key == "service.name")
                                .map(|a| attr_string(a.value.as_ref()))
                                .unwrap_or_default();
                            for ss in rs.scope_spans {
                                for s in ss.spans {
                                    out.push((service.clone(), s));
                                }
                            }
                        }
                    }
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if sock.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, got)
}

fn attr_string(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attrs(s: &Span) -> HashMap<String, String> {
    s.attributes
        .iter()
        .map(|a| (a.key.clone(), attr_string(a.value.as_ref())))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A client's traceparent on POST /v1/tasks: the api's request span continues it, its
/// `submit` span is stored with the task, and the worker's attempt spans (two: the first
/// fails and is retried) are children of that submit span in the same trace, each with its
/// `finish` span under it; task id, kind, queue and attempt are attributes.
#[tokio::test]
async fn one_trace_runs_from_the_submit_through_each_attempt() {
    let (port, received) = otlp_receiver().await;
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis)
        .with(
            "ERRAND__TELEMETRY__OTLP_ENDPOINT",
            &format!("http://127.0.0.1:{port}"),
        )
        .with("OTEL_BSP_SCHEDULE_DELAY", "100");
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();

    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let res = http
        .post(format!("{base}/v1/tasks"))
        .header("traceparent", format!("00-{client_trace}-{client_span}-01"))
        .json(&json!({"kind": "chaos", "payload": {"mode": "fail"}, "max_attempts": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    errand_testkit::api::wait_state(&http, &base, &id, "failed", Duration::from_secs(20)).await;

    let spans = wait_for(
        "the submit, two attempts and two finishes to be exported",
        Duration::from_secs(20),
        || async {
            let all = received.spans();
            let of_task = all
                .iter()
                .filter(|(_, s)| attrs(s).get("task_id") == Some(&id))
                .count();
            // The api's request span ends after its response, so it may come in a later
            // export than the submit under it: wait for it too.
            let parent_seen = all
                .iter()
                .find(|(_, s)| s.name == "submit" && attrs(s).get("task_id") == Some(&id))
                .is_some_and(|(_, sub)| all.iter().any(|(_, s)| s.span_id == sub.parent_span_id));
            (of_task >= 3
                && parent_seen
                && all.iter().filter(|(_, s)| s.name == "finish").count() >= 2)
                .then_some(all)
        },
    )
    .await;
    let in_trace: Vec<&(String, Span)> = spans
        .iter()
        .filter(|(_, s)| hex(&s.trace_id) == client_trace)
        .collect();
    let by_name = |name: &str| -> Vec<&(String, Span)> {
        in_trace
            .iter()
            .copied()
            .filter(|(_, s)| s.name == name)
            .collect()
    };
    let submit = by_name("submit");
    assert_eq!(submit.len(), 1, "one submit span in the client's trace");
    let (svc, submit) = submit[0];
    assert_eq!(svc, "errand-api");
    let a = attrs(submit);
    assert_eq!(a["task_id"], id);
    assert_eq!(a["kind"], "chaos");
    assert_eq!(a["queue"], "default");
    // The submit hangs under the api's request span, which continues the client's span.
    let request = in_trace
        .iter()
        .find(|(_, s)| s.span_id == submit.parent_span_id)
        .map(|(_, s)| s)
        .expect("the submit's parent is exported in the same trace");
    assert_eq!(hex(&request.parent_span_id), client_span);

    let mut attempts = by_name("task");
    attempts.sort_by_key(|(_, s)| s.start_time_unix_nano);
    assert_eq!(attempts.len(), 2, "two attempts in the trace");
    for (n, (svc, s)) in attempts.iter().enumerate() {
        assert_eq!(svc, "errand-worker");
        assert_eq!(
            s.parent_span_id,
            submit.span_id,
            "attempt {} under the submit",
            n + 1
        );
        let a = attrs(s);
        assert_eq!(a["task_id"], id);
        assert_eq!(a["kind"], "chaos");
        assert_eq!(a["queue"], "default");
        assert_eq!(a["attempt"], (n + 1).to_string());
        assert!(
            s.start_time_unix_nano >= submit.end_time_unix_nano,
            "runs after the submit"
        );
        let finishes: Vec<_> = by_name("finish")
            .into_iter()
            .filter(|(_, f)| f.parent_span_id == s.span_id)
            .collect();
        assert_eq!(finishes.len(), 1, "one finish under attempt {}", n + 1);
        let want = if n == 0 { "retried" } else { "failed" };
        assert_eq!(attrs(&finishes[0].1)["outcome"], want);
    }

    // The tree, as the closing note shows it.
    let start = request.start_time_unix_nano;
    let ms = |t: u64| (t.saturating_sub(start)) as f64 / 1e6;
    println!("trace {client_trace} (parent span {client_span} is the client's):");
    println!(
        "  {} [errand-api] {:.1}..{:.1} ms",
        request.name,
        ms(request.start_time_unix_nano),
        ms(request.end_time_unix_nano)
    );
    println!(
        "    submit task_id={id} kind=chaos queue=default {:.1}..{:.1} ms",
        ms(submit.start_time_unix_nano),
        ms(submit.end_time_unix_nano)
    );
    for (_, s) in &attempts {
        let a = attrs(s);
        println!(
            "      task attempt={} [errand-worker] {:.1}..{:.1} ms",
            a["attempt"],
            ms(s.start_time_unix_nano),
            ms(s.end_time_unix_nano)
        );
        for (_, f) in by_name("finish")
            .iter()
            .filter(|(_, f)| f.parent_span_id == s.span_id)
        {
            println!(
                "        finish outcome={} {:.1}..{:.1} ms",
                attrs(f)["outcome"],
                ms(f.start_time_unix_nano),
                ms(f.end_time_unix_nano)
            );
        }
    }
}
