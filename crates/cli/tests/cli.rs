//! The real `errand` binary against the real errand-api, errand-worker and Redis: output,
//! exit codes, and the progress bar as a terminal shows it (in a pseudo-terminal made by
//! util-linux `script`). Run `cargo build --bins` first.

use std::{process::Stdio, time::Duration};

use errand_testkit::{Errand, Proc, RedisServer, bin_path, free_port};
use serde_json::Value;
use tokio::process::Command;

struct Env {
    _redis: RedisServer,
    _api: Proc,
    _worker: Option<Proc>,
    url: String,
}

async fn env_with(worker: bool, tweak: impl FnOnce(Errand) -> Errand) -> Env {
    let redis = RedisServer::start().await;
    let errand = tweak(Errand::new(&redis));
    let api = errand.spawn_api().await;
    let w = worker.then(|| errand.spawn_worker(&[]));
    Env {
        _redis: redis,
        _api: api,
        _worker: w,
        url: errand.base_url(),
    }
}

async fn env(worker: bool) -> Env {
    env_with(worker, |e| e).await
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `errand args…` against `url` with a clean environment (no ERRAND_* from outside).
async fn errand_at(url: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(bin_path("errand"));
    cmd.args(args)
        .env_remove("ERRAND_API_KEY")
        .env("ERRAND_URL", url)
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let o = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("errand {args:?} did not exit within 60 s"))
        .expect("run errand");
    let out = Out {
        code: o.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert!(
        !out.stderr.contains("panicked"),
        "errand {args:?} panicked: {}",
        out.stderr
    );
    out
}

async fn errand(e: &Env, args: &[&str]) -> Out {
    errand_at(&e.url, args, &[]).await
}

/// An error is one line on stderr, prefixed so it is recognisable among other output.
fn one_line_error(o: &Out) -> &str {
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", o.stderr);
    assert!(lines[0].starts_with("errand: "), "{:?}", lines[0]);
    lines[0]
}

#[tokio::test]
async fn submit_wait_exits_with_the_tasks_outcome() {
    let e = env(true).await;
    let ok = errand(
        &e,
        &[
            "submit",
            "sleep",
            "--payload",
            r#"{"duration_secs": 1}"#,
            "--wait",
        ],
    )
    .await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.json()["slept_secs"], 1.0, "the result on stdout");
    assert!(ok.stderr.contains("succeeded"), "{}", ok.stderr);

    let failed = errand(
        &e,
        &[
            "submit",
            "chaos",
            "-p",
            r#"{"mode": "fail_permanent"}"#,
            "--wait",
        ],
    )
    .await;
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("failed (chaos:"),
        "{}",
        failed.stderr
    );

    // JSON: one event per line, the last terminal.
    let j = errand(&e, &["-o", "json", "submit", "noop", "--wait"]).await;
    assert_eq!(j.code, 0);
    let events: Vec<Value> = j
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = events.last().unwrap();
    assert_eq!(last["event"], "succeeded");
    assert_eq!(last["task"]["kind"], "noop");

    // Without --wait: the id alone on stdout, for `id=$(errand submit …)`.
    let plain = errand(&e, &["submit", "noop", "--id", "cli-plain"]).await;
    assert_eq!((plain.code, plain.stdout.trim()), (0, "cli-plain"));
}

#[tokio::test]
async fn cancel_watch_retry_and_get() {
    let e = env(false).await;
    let s = errand(
        &e,
        &[
            "-o", "json", "submit", "noop", "--delay", "600", "--id", "later",
        ],
    )
    .await;
    assert_eq!(s.json()["state"], "scheduled");
    let c = errand(&e, &["cancel", "later"]).await;
    assert_eq!((c.code, c.stdout.trim()), (0, "later: cancelled"));
    let w = errand(&e, &["watch", "later"]).await;
    assert_eq!(w.code, 3, "a cancelled task: {}", w.stderr);
    let again = errand(&e, &["cancel", "later"]).await;
    assert_eq!(again.code, 5);
    assert!(one_line_error(&again).contains("(409)"));
    let r = errand(&e, &["-o", "json", "retry", "later"]).await;
    assert_eq!((r.code, r.json()["state"].as_str()), (0, Some("queued")));
    let g = errand(&e, &["get", "later"]).await;
    assert_eq!(g.code, 0);
    assert!(g.stdout.contains("state     queued"), "{}", g.stdout);
    let gj = errand(&e, &["--output", "json", "get", "later"]).await;
    assert_eq!(gj.json()["id"], "later");
}

#[tokio::test]
async fn errors_are_one_line_with_distinct_exit_codes() {
    let e = env(false).await;
    let nf = errand(&e, &["get", "missing-task"]).await;
    assert_eq!(nf.code, 5);
    assert!(one_line_error(&nf).contains("(404)"));

    let bad_kind = errand(&e, &["submit", "no-such-kind"]).await;
    assert_eq!(bad_kind.code, 5);
    assert!(one_line_error(&bad_kind).contains("[field: kind]"));

    let bad_payload = errand(
        &e,
        &["submit", "sleep", "--payload", r#"{"duration_secs": "x"}"#],
    )
    .await;
    assert!(one_line_error(&bad_payload).contains("payload.duration_secs"));

    let not_json = errand(&e, &["submit", "sleep", "--payload", "{oops"]).await;
    assert_eq!(not_json.code, 2);
    assert!(one_line_error(&not_json).contains("--payload is not JSON"));

    let bad_flag = errand(&e, &["list", "--state", "bogus"]).await;
    assert_eq!(bad_flag.code, 2);
    assert!(
        bad_flag.stderr.contains("one of scheduled"),
        "{}",
        bad_flag.stderr
    );
    assert_eq!(errand(&e, &["frobnicate"]).await.code, 2);

    let down = errand_at(
        &format!("http://127.0.0.1:{}", free_port()),
        &["queues"],
        &[],
    )
    .await;
    assert_eq!(down.code, 4);
    assert!(one_line_error(&down).contains("cannot reach the errand API"));

    let bad_url = errand_at("localhost:8080", &["queues"], &[]).await;
    assert_eq!(bad_url.code, 2);

    let help = errand(&e, &["--help"]).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes"), "{}", help.stdout);
}

#[tokio::test]
async fn list_pages_and_all_collects_every_page() {
    let e = env(false).await;
    for i in 0..7 {
        let p = format!(r#"{{"i": {i}}}"#);
        let o = errand(&e, &["submit", "noop", "-q", "paged", "-p", &p]).await;
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    errand(&e, &["submit", "noop", "-q", "other"]).await;
    let page = errand(&e, &["list", "--queue", "paged", "--limit", "3"]).await;
    assert_eq!(page.code, 0);
    let rows = page.stdout.lines().count() - 1;
    assert!((1..=3).contains(&rows), "{}", page.stdout);
    assert!(page.stdout.starts_with("ID"), "a header: {}", page.stdout);
    assert!(page.stderr.contains("--cursor "), "{}", page.stderr);

    let all = errand(
        &e,
        &[
            "-o", "json", "list", "--queue", "paged", "--limit", "3", "--all",
        ],
    )
    .await;
    let tasks = all.json()["tasks"].as_array().unwrap().clone();
    assert_eq!(tasks.len(), 7);
    assert!(tasks.iter().all(|t| t["queue"] == "paged"));
    let text_all = errand(&e, &["list", "--all", "--state", "queued"]).await;
    assert_eq!(
        text_all.stdout.lines().count(),
        1 + 8,
        "{}",
        text_all.stdout
    );
}

#[tokio::test]
async fn schedules_kinds_queues_workers_and_completions() {
    let e = env(true).await;
    let c = errand(
        &e,
        &[
            "-o",
            "json",
            "schedules",
            "create",
            "--id",
            "nightly",
            "--cron",
            "0 3 * * *",
            "--kind",
            "noop",
            "--timezone",
            "Europe/Paris",
        ],
    )
    .await;
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert_eq!(c.json()["timezone"], "Europe/Paris");
    let d = errand(&e, &["-o", "json", "schedules", "disable", "nightly"]).await;
    assert_eq!(d.json()["enabled"], false);
    let l = errand(&e, &["schedules", "list"]).await;
    assert!(
        l.stdout.lines().nth(1).unwrap().starts_with("nightly  no"),
        "{}",
        l.stdout
    );
    let en = errand(&e, &["-o", "json", "schedules", "enable", "nightly"]).await;
    assert_eq!(en.json()["enabled"], true);
    let bad = errand(
        &e,
        &["schedules", "create", "--cron", "nope", "--kind", "noop"],
    )
    .await;
    assert_eq!(bad.code, 5);
    assert!(one_line_error(&bad).contains("[field: cron]"));
    assert_eq!(
        errand(&e, &["schedules", "delete", "nightly"]).await.code,
        0
    );
    assert_eq!(errand(&e, &["schedules", "get", "nightly"]).await.code, 5);

    let k = errand(&e, &["-o", "json", "kinds"]).await;
    assert!(
        k.json()
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "sleep")
    );
    assert!(errand(&e, &["kinds"]).await.stdout.contains("long_running"));

    errand(&e, &["submit", "noop", "--wait"]).await;
    // The worker that ran it registered the built-in kinds: `kinds <name>` says who runs it.
    let one = errand(&e, &["kinds", "long_running"]).await;
    assert_eq!(one.code, 0);
    assert!(
        one.stdout.starts_with("sleep ")
            && one.stdout.contains("duration_secs")
            && one.stdout.contains("workers:")
            && !one.stdout.contains("none live"),
        "{}",
        one.stdout
    );
    let k = errand(&e, &["-o", "json", "kinds", "sleep"]).await;
    assert!(!k.json()["workers"].as_array().unwrap().is_empty());
    let none = errand(&e, &["kinds", "no_such_kind"]).await;
    assert_eq!(none.code, 5);
    assert!(none.stderr.contains("known kinds: "), "{}", none.stderr);
    let q = errand(&e, &["-o", "json", "queues"]).await;
    assert!(
        q.json()["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "default")
    );
    // The worker registered by the time it ran the task above.
    let w = errand(&e, &["-o", "json", "workers"]).await;
    assert_eq!(w.json()["workers"].as_array().unwrap().len(), 1);
    assert!(errand(&e, &["workers"]).await.stdout.contains("default×"));

    let bash = errand(&e, &["completions", "bash"]).await;
    assert_eq!(bash.code, 0);
    assert!(
        bash.stdout.contains("_errand"),
        "a bash completion function"
    );
    let zsh = errand(&e, &["completions", "zsh"]).await;
    assert!(zsh.stdout.starts_with("#compdef errand"));
}

#[tokio::test]
async fn api_key_from_env_or_flag() {
    let e = env_with(false, |e| {
        e.with("ERRAND__API__API_KEYS", "cli-key,read:ro-key")
    })
    .await;
    let no = errand(&e, &["queues"]).await;
    assert_eq!(no.code, 5);
    assert!(one_line_error(&no).contains("(401)"));
    let env_key = errand_at(&e.url, &["queues"], &[("ERRAND_API_KEY", "cli-key")]).await;
    assert_eq!(env_key.code, 0, "{}", env_key.stderr);
    let flag = errand(&e, &["--api-key", "cli-key", "kinds"]).await;
    assert_eq!(flag.code, 0, "{}", flag.stderr);
    // A read-only key reads but cannot submit: refused (403), not unreachable.
    let ro = [("ERRAND_API_KEY", "ro-key")];
    assert_eq!(errand_at(&e.url, &["queues"], &ro).await.code, 0);
    let denied = errand_at(&e.url, &["submit", "noop"], &ro).await;
    assert_eq!(denied.code, 5);
    assert!(
        one_line_error(&denied).contains("(403)"),
        "{}",
        denied.stderr
    );
}

/// The progress bar as a person sees it: `errand watch` on a terminal for a 3 s `sleep`
/// shows a bar that moves, then the result.
#[tokio::test]
async fn watch_draws_a_moving_progress_bar_on_a_terminal() {
    let e = env(true).await;
    let s = errand(
        &e,
        &[
            "submit",
            "sleep",
            "--payload",
            r#"{"duration_secs": 3}"#,
            "--id",
            "pty-3s",
        ],
    )
    .await;
    assert_eq!(s.code, 0);
    let cmdline = format!("{} watch pty-3s", bin_path("errand").display());
    let started = std::time::Instant::now();
    let o = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("script")
            .args(["-qfec", &cmdline, "/dev/null"])
            .env("ERRAND_URL", &e.url)
            .env("COLUMNS", "100")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("watch ends")
    .expect("util-linux `script` is installed");
    let tty = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{tty}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it followed the task"
    );
    // Redraws: the bar's line is rewritten in place (carriage return + erase line).
    assert!(tty.contains("\r\x1b[2K"), "in-place redraws: {tty:?}");
    let percents: Vec<u32> = tty
        .split(['\r', '\n'])
        .filter(|l| l.contains('['))
        .filter_map(|l| {
            let before = l.split('%').next()?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .collect();
    assert!(
        percents.iter().any(|p| (1..100).contains(p)),
        "the bar showed progress between 0 and 100: {percents:?}"
    );
    assert!(
        percents.windows(2).all(|w| w[0] <= w[1]),
        "it only moves forward: {percents:?}"
    );
    assert!(tty.contains("running"), "the state beside the bar");
    assert!(tty.contains("slept"), "the task's progress message");
    assert!(
        tty.contains("\"slept_secs\": 3.0"),
        "ends with the result: {tty:?}"
    );
}

/// An API restart in the middle of a watch: the CLI opens the stream again and still ends
/// with the task's outcome (the worker, not the API, runs the task).
#[tokio::test]
async fn watch_survives_an_api_restart() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let mut api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let url = errand.base_url();
    let s = errand_at(
        &url,
        &[
            "submit",
            "sleep",
            "-p",
            r#"{"duration_secs": 4}"#,
            "--id",
            "restart-4s",
        ],
        &[],
    )
    .await;
    assert_eq!(s.code, 0, "{}", s.stderr);
    let mut watch = Command::new(bin_path("errand"))
        .args(["-o", "json", "watch", "restart-4s"])
        .env("ERRAND_URL", &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert!(
        !first["task"]["state"]
            .as_str()
            .map(|s| ["succeeded", "failed", "cancelled"].contains(&s))
            .unwrap(),
        "watching began before the end: {first}"
    );
    api.child.kill().await.unwrap();
    let _api = errand.spawn_api().await;
    let mut events = vec![first];
    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            events.push(serde_json::from_str::<Value>(&l).unwrap());
        }
        watch.wait().await.unwrap()
    })
    .await
    .expect("watch ends after the restart");
    assert_eq!(rest.code(), Some(0), "{events:?}");
    assert_eq!(events.last().unwrap()["event"], "succeeded");
}

#[tokio::test]
async fn redis_down_exits_unreachable_with_the_retry_hint() {
    let mut redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let url = errand.base_url();
    assert_eq!(errand_at(&url, &["queues"], &[]).await.code, 0);
    redis.kill().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let o = loop {
        let o = errand_at(&url, &["queues"], &[]).await;
        if o.code != 0 || std::time::Instant::now() > deadline {
            break o;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(o.code, 4, "{}", o.stderr);
    let line = one_line_error(&o);
    assert!(
        line.contains("(503)") && line.contains("retry after"),
        "{line}"
    );
}

/// `--callback` (with `--callback-events`) reaches the record and `get` shows the
/// delivery; a callback the server's destination policy refuses is a one-line error naming
/// `callback.url`.
#[tokio::test]
async fn submit_with_a_callback() {
    let e = env_with(true, |e| {
        e.with(
            "ERRAND__WEBHOOKS__SECRETS",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
    })
    .await;
    let ok = errand(
        &e,
        &[
            "submit",
            "noop",
            "--callback",
            "https://hooks.example.com/errand",
            "--callback-events",
            "succeeded,failed",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let r = ok.json();
    assert_eq!(r["callback"]["url"], "https://hooks.example.com/errand");
    assert_eq!(
        r["callback"]["events"],
        serde_json::json!(["succeeded", "failed"])
    );

    let refused = errand(&e, &["submit", "noop", "--callback", "http://127.0.0.1:9/"]).await;
    assert_eq!(refused.code, 5);
    assert!(
        one_line_error(&refused).contains("callback.url"),
        "{}",
        refused.stderr
    );
    let bad = errand(
        &e,
        &[
            "submit",
            "noop",
            "--callback",
            "https://h.example.com/",
            "--callback-events",
            "done",
        ],
    )
    .await;
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("one of succeeded"), "{}", bad.stderr);
}

#[tokio::test]
async fn pause_and_resume_a_queue() {
    let e = env(false).await;
    let p = errand(&e, &["pause", "mail"]).await;
    assert_eq!(p.code, 0, "{}", p.stderr);
    assert!(
        p.stdout.starts_with("queue mail paused since "),
        "{}",
        p.stdout
    );
    let q = errand(&e, &["queues"]).await;
    let row = q
        .stdout
        .lines()
        .find(|l| l.starts_with("mail"))
        .unwrap_or_default();
    assert!(
        row.trim_end().ends_with("yes"),
        "paused column: {}",
        q.stdout
    );
    let r = errand(&e, &["-o", "json", "resume", "mail"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["paused"], false);
    assert!(r.json()["paused_at"].is_null());
    let bad = errand(&e, &["pause", "no/such"]).await;
    assert_eq!(bad.code, 5, "{}", bad.stderr);
}

#[tokio::test]
async fn limits_are_set_and_shown_and_a_bulk_cancel_is_followed_to_its_end() {
    let e = env(false).await;
    let set = errand(
        &e,
        &[
            "--output",
            "json",
            "limits",
            "partner",
            "--rate",
            "500/1s",
            "--burst",
            "50",
            "--kind-rate",
            "long_running=10/1s:2",
            "--per-key",
            "2",
        ],
    )
    .await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(
        set.json()["limits"],
        serde_json::json!({"rate": {"count": 500, "period_ms": 1000, "burst": 50},
            "kinds": {"sleep": {"count": 10, "period_ms": 1000, "burst": 2}}, "per_key": 2})
    );
    let shown = errand(&e, &["limits", "partner"]).await;
    assert_eq!(shown.code, 0);
    assert!(
        shown.stdout.contains("rate      500/1000ms (burst 50)"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("per key   2"), "{}", shown.stdout);
    let bad = errand(&e, &["limits", "partner", "--rate", "500"]).await;
    assert_eq!(bad.code, 2, "a rate without its period is a usage error");
    let cleared = errand(&e, &["--output", "json", "limits", "partner", "--clear"]).await;
    assert_eq!(cleared.json()["limits"]["per_key"], Value::Null);

    for i in 0..30 {
        let o = errand(
            &e,
            &[
                "submit",
                "sleep",
                "-q",
                "partner",
                "-p",
                r#"{"duration_secs": 1}"#,
                "--priority",
                "7",
                "--concurrency-key",
                "c1",
                "--id",
                &format!("bk{i}"),
            ],
        )
        .await;
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    let t = errand(&e, &["--output", "json", "get", "bk3"]).await.json();
    assert_eq!(
        (t["priority"].clone(), t["concurrency_key"].clone()),
        (serde_json::json!(7), serde_json::json!("c1"))
    );
    let job = errand(&e, &["--output", "json", "bulk", "partner", "cancel"]).await;
    assert_eq!(job.code, 0, "{}", job.stderr);
    let j = job.json();
    assert_eq!(
        (j["status"].clone(), j["done"].clone()),
        (serde_json::json!("done"), serde_json::json!(30))
    );
    let text = errand(&e, &["bulk", "partner", "delete", "--state", "cancelled"]).await;
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout
            .contains("done — 30 examined, 30 matched, 30 done, 0 skipped"),
        "{}",
        text.stdout
    );
    let refused = errand(&e, &["bulk", "partner", "retry", "--state", "queued"]).await;
    assert_eq!(refused.code, 5);
    assert!(one_line_error(&refused).contains("state"));
}

/// A workflow from a file, run by the real worker to its end: a map step spawns three
/// tasks and the step after it gets their results (read by the Rust kind from its
/// context); a failing one exits 1; `get` and `list` show them.
#[tokio::test]
async fn a_workflow_is_submitted_from_a_file_and_followed_to_its_end() {
    let e = env(true).await;
    let dir = std::env::temp_dir().join(format!("errand-wf-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mr.json");
    std::fs::write(
        &file,
        serde_json::json!({"id": "cli-mr", "steps": [
            {"name": "split", "kind": "noop", "map": true, "payload": {"spawn": [
                {"kind": "noop", "payload": {"part": 0}},
                {"kind": "noop", "payload": {"part": 1}},
                {"kind": "noop", "payload": {"part": 2}}
            ]}},
            {"name": "join", "kind": "gather", "after": ["split"], "on_failure": "fail"}
        ]})
        .to_string(),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let ok = errand(&e, &["-o", "json", "workflow", "submit", path, "--wait"]).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let w = ok.json();
    assert_eq!(w["state"], "succeeded");
    let join = w["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "join")
        .unwrap();
    assert_eq!(
        join["result"]["inputs"]["split"]["result"],
        serde_json::json!([{"part": 0}, {"part": 1}, {"part": 2}])
    );

    let bad = dir.join("fail.json");
    std::fs::write(
        &bad,
        serde_json::json!({"id": "cli-fail", "steps": [
            {"name": "a", "kind": "chaos", "payload": {"mode": "fail_permanent"}},
            {"name": "b", "kind": "noop", "after": ["a"], "on_failure": "fail"}
        ]})
        .to_string(),
    )
    .unwrap();
    let failed = errand(&e, &["workflow", "submit", bad.to_str().unwrap(), "--wait"]).await;
    assert_eq!(failed.code, 1, "{} {}", failed.stdout, failed.stderr);
    assert!(
        failed.stdout.contains("dependency_failed"),
        "{}",
        failed.stdout
    );
    let got = errand(&e, &["workflow", "get", "cli-mr"]).await;
    assert_eq!(got.code, 0);
    assert!(got.stdout.contains("split.2"), "{}", got.stdout);
    let list = errand(&e, &["workflow", "list"]).await;
    assert!(
        list.stdout.contains("cli-fail") && list.stdout.contains("cli-mr"),
        "{}",
        list.stdout
    );
    let missing = errand(&e, &["workflow", "get", "nope"]).await;
    assert_eq!(missing.code, 5);
    let _ = std::fs::remove_dir_all(&dir);
}
