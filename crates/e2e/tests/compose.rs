//! The project's docker-compose.yaml, for real: `scripts/compose-test.sh` (`just
//! compose-test`) builds the images and starts the stack with `docker-compose up --build
//! -d`, then runs this test against it. Ignored in the ordinary test run (it needs a Docker
//! engine and the stack); the script runs it with `--run-ignored all`.
//!
//! The script passes: `COMPOSE_PROJECT_NAME`, `ERRAND_API_KEY`, `ERRAND_REDIS_PASSWORD`,
//! `ERRAND_PUBLISH`, `ERRAND_COMPOSE_ADDR` (where the API was published, on 127.0.0.1) and
//! `COMPOSE_BUILD_SECS`. The
//! figures go to docs/deploy.md, between its `compose-figures` markers.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    process::Command,
    time::{Duration, Instant},
};

use errand_testkit::wait_for;
use futures::{StreamExt, stream};
use serde_json::{Value, json};

struct Stack {
    base: String,
    key: String,
    http: reqwest::Client,
    root: String,
    figures: Vec<(String, String)>,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `just compose-test`"))
}

impl Stack {
    fn compose(&self, args: &[&str]) -> String {
        let out = Command::new("docker-compose")
            .args(args)
            .current_dir(&self.root)
            .output()
            .expect("docker-compose");
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn containers(&self, service: &str) -> Vec<String> {
        self.compose(&["ps", "-q", service])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn inspect(container: &str, format: &str) -> String {
        let out = Command::new("docker")
            .args(["inspect", "-f", format, container])
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn figure(&mut self, what: &str, value: String) {
        println!("compose[{what}] {value}");
        self.figures.push((what.to_owned(), value));
    }

    /// A read; retried on a transport error, since a read repeated is harmless and a
    /// pooled connection can meet the server's keep-alive close mid-send.
    async fn get(&self, path: &str) -> reqwest::Response {
        let mut tries = 0;
        loop {
            let res = self
                .http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.key)
                .send()
                .await;
            match res {
                Ok(r) => return r,
                Err(e) if tries < 3 => {
                    tries += 1;
                    println!("compose: retrying GET {path} after {e}");
                }
                Err(e) => panic!("GET {path}: {e}"),
            }
        }
    }

    async fn json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("json")
    }

    /// Submits `n` tasks, 16 at a time; returns the ids accepted (every one must be).
    async fn submit_all(&self, n: usize, body: Value) -> Vec<String> {
        let ids: Vec<String> = stream::iter(0..n)
            .map(|_| {
                let body = body.clone();
                async move {
                    let res = self
                        .http
                        .post(format!("{}/v1/tasks", self.base))
                        .bearer_auth(&self.key)
                        .json(&body)
                        .send()
                        .await
                        .expect("submit");
                    assert_eq!(res.status(), 202, "submit");
                    res.json::<Value>().await.unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        ids
    }

    /// Waits for every id to succeed; returns their records.
    async fn all_succeed(&self, ids: &[String], timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut done: HashMap<String, Value> = HashMap::new();
        loop {
            let pending: Vec<String> = ids
                .iter()
                .filter(|id| !done.contains_key(*id))
                .cloned()
                .collect();
            let fetched: Vec<(String, Value)> = stream::iter(pending)
                .map(|id| async move {
                    let r = self.json(&format!("/v1/tasks/{id}")).await;
                    (id, r)
                })
                .buffer_unordered(16)
                .collect()
                .await;
            for (id, r) in fetched {
                assert!(
                    !matches!(r["state"].as_str(), Some("failed" | "cancelled")),
                    "task {id} ended badly: {r}"
                );
                if r["state"] == "succeeded" {
                    done.insert(id, r);
                }
            }
            if done.len() == ids.len() {
                return ids.iter().map(|id| done[id].clone()).collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} tasks succeeded within {timeout:?}",
                done.len(),
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The stock workers (the `worker` service serves `default`; the example's
    /// `report-worker` of docker-compose.kinds.yaml serves `reports` and is counted apart).
    async fn workers(&self) -> Vec<Value> {
        self.json("/v1/workers").await["workers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|w| {
                w["queues"]
                    .as_array()
                    .is_some_and(|q| q.iter().any(|q| q["name"] == "default"))
            })
            .collect()
    }

    async fn wait_workers(&self, n: usize) -> Vec<Value> {
        wait_for(
            &format!("/v1/workers to list {n} workers"),
            Duration::from_secs(60),
            || async {
                let w = self.workers().await;
                (w.iter().filter(|w| w["stopping"] == false).count() == n).then_some(w)
            },
        )
        .await
    }

    fn write_figures(&self) {
        let path = format!("{}/docs/deploy.md", self.root);
        let doc = std::fs::read_to_string(&path).expect("docs/deploy.md");
        let (start, end) = (
            "<!-- compose-figures:start -->",
            "<!-- compose-figures:end -->",
        );
        let (Some(a), Some(b)) = (doc.find(start), doc.find(end)) else {
            panic!("docs/deploy.md has no compose-figures markers");
        };
        let mut table = String::from("\n| check | figure |\n|---|---|\n");
        for (what, value) in &self.figures {
            let _ = writeln!(table, "| {what} | {value} |");
        }
        let _ = writeln!(
            table,
            "\nMeasured by `just compose-test` on {} (2 cores, Debian's docker.io 20.10 and docker-compose 1.29, local stand-in images).\n",
            chrono::Utc::now().format("%Y-%m-%d")
        );
        let doc = format!("{}{}{}", &doc[..a + start.len()], table, &doc[b..]);
        std::fs::write(&path, doc).expect("write docs/deploy.md");
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The container hostname a worker name starts with (`host:pid:ulid`).
fn host_of(worker: &str) -> String {
    worker.split(':').next().unwrap_or_default().to_owned()
}

#[tokio::test]
#[ignore = "needs Docker and the compose stack: `just compose-test`"]
async fn the_compose_stack_runs_scales_survives_kills_and_restarts_and_drains() {
    let mut s = Stack {
        base: format!("http://{}", env("ERRAND_COMPOSE_ADDR")),
        key: env("ERRAND_API_KEY"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // Under actix's 5 s keep-alive, so idle connections are dropped here first.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
        root: concat!(env!("CARGO_MANIFEST_DIR"), "/../..").to_owned(),
        figures: Vec::new(),
    };
    if let Ok(b) = std::env::var("COMPOSE_BUILD_SECS") {
        s.figure(
            "`docker-compose up --build -d` (images built, stack started)",
            format!("{b} s"),
        );
    }

    // Every service healthy: redis and api by their healthchecks, the workers running.
    let t = Instant::now();
    let redis = s.containers("redis");
    let api = s.containers("api");
    assert_eq!((redis.len(), api.len()), (1, 1));
    wait_for(
        "redis and api healthy",
        Duration::from_secs(120),
        || async {
            let healthy = redis
                .iter()
                .chain(&api)
                .all(|c| Stack::inspect(c, "{{.State.Health.Status}}") == "healthy");
            healthy.then_some(())
        },
    )
    .await;
    let workers = s.containers("worker");
    assert_eq!(workers.len(), 2, "deploy.replicas: 2");
    for w in &workers {
        assert_eq!(Stack::inspect(w, "{{.State.Status}}"), "running");
    }
    s.figure(
        "services healthy (redis, api) and 2 workers running",
        secs(t.elapsed()),
    );

    // The key is required; /docs and /redoc are served from the container.
    let open = s
        .http
        .get(format!("{}/v1/queues", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 401, "production compose needs the key");
    for (path, needle) in [
        ("/docs/", "swagger"),
        ("/redoc", "redoc"),
        ("/redoc/redoc.standalone.js", "Redoc"),
        ("/openapi.json", "openapi"),
    ] {
        let res = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let body = res.text().await.unwrap();
        assert!(
            body.to_lowercase().contains(&needle.to_lowercase()),
            "{path}"
        );
    }
    s.figure(
        "`/docs`, `/redoc` (+ its script), `/openapi.json` from the container",
        "200".into(),
    );

    let listed = s.wait_workers(2).await;
    let hosts: HashSet<String> = listed
        .iter()
        .map(|w| host_of(w["name"].as_str().unwrap()))
        .collect();
    assert_eq!(hosts.len(), 2, "two worker containers: {listed:?}");
    s.figure("`/v1/workers`", "2 workers, one per replica".into());

    // 500 tasks, all succeed.
    let t = Instant::now();
    let ids = s
        .submit_all(500, json!({"kind": "noop", "payload": {"n": 1}}))
        .await;
    let submitted = t.elapsed();
    let records = s.all_succeed(&ids, Duration::from_secs(120)).await;
    let by_host: HashSet<String> = records
        .iter()
        .map(|r| host_of(r["worker"].as_str().unwrap_or_default()))
        .collect();
    s.figure(
        "500 noop tasks: submitted (16 concurrent clients) / all succeeded",
        format!(
            "{} / {} (ran on {} workers)",
            secs(submitted),
            secs(t.elapsed()),
            by_host.len()
        ),
    );

    // The user's own worker image beside the stock api (docker-compose.kinds.yaml): its
    // kinds registered, validated by the api from their schema, run by it.
    let t = Instant::now();
    let csv = wait_for(
        "csv_summary registered with a live worker",
        Duration::from_secs(120),
        || async {
            let kinds = s.json("/v1/kinds").await;
            kinds
                .as_array()?
                .iter()
                .find(|k| {
                    k["name"] == "csv_summary"
                        && k["workers"].as_array().is_some_and(|w| !w.is_empty())
                })
                .cloned()
        },
    )
    .await;
    assert_eq!(csv["queues"], json!(["reports"]), "{csv}");
    let refused = s
        .http
        .post(format!("{}/v1/tasks", s.base))
        .bearer_auth(&s.key)
        .json(&json!({"kind": "csv_summary", "queue": "reports", "payload": {"csv": 5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["field"], "payload.csv", "{problem}");
    let ids = s
        .submit_all(
            1,
            json!({"kind": "csv_summary", "queue": "reports",
                   "payload": {"csv": "city,temp\nParis,21.5\nOslo,8\n"}}),
        )
        .await;
    let records = s.all_succeed(&ids, Duration::from_secs(60)).await;
    assert_eq!(records[0]["result"]["rows"], 2, "{}", records[0]);
    s.figure(
        "the example's own worker image (docker-compose.kinds.yaml): kind registered, a bad payload 422 naming `payload.csv`, a `csv_summary` task succeeded",
        secs(t.elapsed()),
    );

    // --scale worker=4: two more workers that take work.
    let t = Instant::now();
    s.compose(&["up", "-d", "--no-recreate", "--scale", "worker=4"]);
    let listed = s.wait_workers(4).await;
    s.figure(
        "`--scale worker=4` until `/v1/workers` lists 4",
        secs(t.elapsed()),
    );
    let new_hosts: HashSet<String> = listed
        .iter()
        .map(|w| host_of(w["name"].as_str().unwrap()))
        .filter(|h| !hosts.contains(h))
        .collect();
    assert_eq!(new_hosts.len(), 2);
    let t = Instant::now();
    // 256 tasks of 1 s against 4 × 16 slots (4 s of work for all four, twice that for
    // the old two alone): every worker gets some.
    let ids = s
        .submit_all(
            256,
            json!({"kind": "sleep", "payload": {"duration_secs": 1}}),
        )
        .await;
    let records = s.all_succeed(&ids, Duration::from_secs(120)).await;
    let mut per_host: HashMap<String, usize> = HashMap::new();
    for r in &records {
        *per_host
            .entry(host_of(r["worker"].as_str().unwrap_or_default()))
            .or_default() += 1;
    }
    for h in &new_hosts {
        assert!(
            per_host.get(h).copied().unwrap_or(0) > 0,
            "new worker {h} took no work: {per_host:?}"
        );
    }
    let mut counts: Vec<usize> = per_host.values().copied().collect();
    counts.sort();
    s.figure(
        "256 × 1 s tasks over 4 workers (16 slots each): tasks per worker",
        format!("{counts:?}, all succeeded in {}", secs(t.elapsed())),
    );

    // SIGKILL a worker mid-load: its tasks re-run elsewhere (attempt 2), nothing is lost.
    let ids = s
        .submit_all(
            64,
            json!({"kind": "sleep", "payload": {"duration_secs": 3}}),
        )
        .await;
    let (victim, running) = wait_for(
        "a worker running tasks",
        Duration::from_secs(30),
        || async {
            s.workers().await.into_iter().find_map(|w| {
                // Only this batch's tasks: a heartbeat can still list finished ones.
                let mine: Vec<String> = w["running_ids"]
                    .as_array()?
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .filter(|id| ids.contains(id))
                    .collect();
                (mine.len() >= 4).then(|| (w["name"].as_str().unwrap().to_owned(), mine))
            })
        },
    )
    .await;
    let container = s
        .containers("worker")
        .into_iter()
        .find(|c| c.starts_with(&host_of(&victim)))
        .expect("the victim's container");
    let t = Instant::now();
    let killed_at = chrono::Utc::now();
    // SIGKILL from outside, as the kernel's OOM killer would: Docker sees the worker die
    // (not a `docker kill`, which counts as a manual stop) and restarts it.
    let pid: i32 = Stack::inspect(&container, "{{.State.Pid}}")
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the worker's process");
    let records = s.all_succeed(&ids, Duration::from_secs(120)).await;
    let restarts: u32 = wait_for(
        "the killed worker restarted",
        Duration::from_secs(60),
        || async {
            let n: u32 = Stack::inspect(&container, "{{.RestartCount}}")
                .parse()
                .ok()?;
            (n >= 1 && Stack::inspect(&container, "{{.State.Status}}") == "running").then_some(n)
        },
    )
    .await;
    let rerun: Vec<&Value> = records
        .iter()
        .filter(|r| running.contains(&r["id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(rerun.len(), running.len());
    // The running list comes from the last heartbeat, so a task in it may have ended just
    // before the kill; every other one re-ran.
    let ended_before = |r: &Value| {
        r["finished_at"]
            .as_str()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
            .is_some_and(|t| t < killed_at)
    };
    let rerun: Vec<&Value> = rerun.into_iter().filter(|r| !ended_before(r)).collect();
    assert!(!rerun.is_empty(), "the killed worker was running tasks");
    for r in &rerun {
        assert_eq!(
            r["attempt"], 2,
            "a killed attempt re-runs as attempt 2: {r}"
        );
        assert!(
            host_of(r["worker"].as_str().unwrap()) != victim,
            "re-ran elsewhere: {r}"
        );
    }
    s.figure(
        "worker SIGKILLed with tasks running (64 × 3 s tasks)",
        format!(
            "all 64 succeeded, {} killed tasks re-ran as attempt 2 (`worker_lost` recorded), {} after the kill; the container was restarted by its restart policy ({restarts}×)",
            rerun.len(),
            secs(t.elapsed())
        ),
    );

    // `docker-compose restart redis` mid-load: every accepted task still runs (AOF).
    let t = Instant::now();
    let submitter = {
        let http = s.http.clone();
        let base = s.base.clone();
        let key = s.key.clone();
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut refused = 0;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(12) {
                let res = http
                    .post(format!("{base}/v1/tasks"))
                    .bearer_auth(&key)
                    .json(&json!({"kind": "sleep", "payload": {"duration_secs": 0.2}}))
                    .send()
                    .await;
                // About 100 submits/s: under production's rate limit (200/s per key).
                tokio::time::sleep(Duration::from_millis(10)).await;
                match res {
                    Ok(r) if r.status() == 202 => accepted.push(
                        r.json::<Value>().await.unwrap()["id"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                    ),
                    Ok(r) if r.status() == 429 => {
                        panic!(
                            "rate-limited at ~100 submits/s: {:?}",
                            r.headers().get("retry-after")
                        )
                    }
                    Ok(r) => {
                        assert_eq!(r.status(), 503, "Redis restarting: 503, never 500");
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(_) => refused += 1,
                }
            }
            (accepted, refused)
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.compose(&["restart", "redis"]);
    let (accepted, refused) = submitter.await.unwrap();
    assert!(accepted.len() > 50, "{} accepted", accepted.len());
    s.all_succeed(&accepted, Duration::from_secs(180)).await;
    s.figure(
        "`docker-compose restart redis` during 12 s of submits",
        format!(
            "{} accepted, all succeeded; {refused} refused with 503 while it restarted; {} in all",
            accepted.len(),
            secs(t.elapsed())
        ),
    );

    // `docker-compose stop` drains: running tasks finish, workers exit 0 within the grace.
    let workers = wait_for(
        "4 worker containers running",
        Duration::from_secs(60),
        || async {
            let w = s.containers("worker");
            (w.len() == 4
                && w.iter()
                    .all(|c| Stack::inspect(c, "{{.State.Status}}") == "running"))
            .then_some(w)
        },
    )
    .await;
    s.wait_workers(4).await;
    let ids = s
        .submit_all(
            32,
            json!({"kind": "sleep", "payload": {"duration_secs": 5}}),
        )
        .await;
    wait_for("tasks running", Duration::from_secs(30), || async {
        let running: usize = s
            .workers()
            .await
            .iter()
            .map(|w| w["running"].as_u64().unwrap_or(0) as usize)
            .sum();
        (running >= 16).then_some(())
    })
    .await;
    let t = Instant::now();
    s.compose(&["stop", "worker"]);
    let stopped = t.elapsed();
    for w in &workers {
        assert_eq!(
            Stack::inspect(w, "{{.State.ExitCode}}"),
            "0",
            "worker {w} exit code"
        );
    }
    assert!(
        stopped < Duration::from_secs(40),
        "within stop_grace_period"
    );
    let mut finished = 0;
    let mut queued = 0;
    for id in &ids {
        let r = s.json(&format!("/v1/tasks/{id}")).await;
        match r["state"].as_str() {
            Some("succeeded") => finished += 1,
            Some("queued") => queued += 1,
            other => panic!("task {id} is {other:?} after the drain: {r}"),
        }
    }
    assert!(finished >= 16, "{finished} finished");
    s.figure(
        "`docker-compose stop worker` with 32 × 5 s tasks in flight",
        format!(
            "4 workers exited 0 in {}; {finished} running tasks finished, {queued} never started stayed queued",
            secs(stopped)
        ),
    );
    s.compose(&["start", "worker"]);
    s.all_succeed(&ids, Duration::from_secs(120)).await;

    let t = Instant::now();
    s.compose(&["stop"]);
    s.figure("`docker-compose stop` (everything)", secs(t.elapsed()));
    s.write_figures();
}
