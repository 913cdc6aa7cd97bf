//! A worker cut off from Redis by the network (a network namespace whose only link is taken
//! down), for longer than its lease, then reconnected: its tasks run again elsewhere, its
//! late outcomes are refused, and it goes back to work by itself.

use std::{
    collections::HashSet,
    process::Command,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use errand_testkit::{Errand, Output, RedisServer, api::submit, wait_for};
use serde_json::{Value, json};

use crate::helpers::{
    finishes, id_of, pid_of, prefix_of, records, snapshot, time_of, wait_all_terminal,
};

/// Runs `ip ARGS`, panicking with its stderr when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run `ip`");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace `errand-part-<pid>` joined to the root namespace by a veth pair on a
/// private /30. Removed on drop, also when the test fails (a veth pair goes with either
/// end, and a namespace file with `ip netns del`; its processes are killed before).
struct Netns {
    ns: String,
    root_if: String,
    /// The root side's address: Redis listens on it, the namespace reaches Redis through it.
    root_ip: String,
}

impl Netns {
    fn create() -> Self {
        let pid = std::process::id();
        // One /30 of 10.211.0.0/16 per test process.
        let base = (pid % 16384) * 4;
        let addr = |host: u32| format!("10.211.{}.{}", base / 256, base % 256 + host);
        let me = Self {
            ns: format!("errand-part-{pid}"),
            root_if: format!("eprt{pid}"),
            root_ip: addr(1),
        };
        me.remove();
        let ns_if = format!("epns{pid}");
        let ns = me.ns.as_str();
        ip(&["netns", "add", ns]);
        ip(&[
            "link",
            "add",
            &me.root_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", ns]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", me.root_ip),
            "dev",
            &me.root_if,
        ]);
        ip(&["link", "set", &me.root_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{}/30", addr(2)), "dev", &ns_if]);
        inside(&["link", "set", &ns_if, "up"]);
        inside(&["link", "set", "lo", "up"]);
        me
    }

    /// The prefix that runs a command inside the namespace.
    fn exec(&self) -> [&str; 4] {
        ["ip", "netns", "exec", self.ns.as_str()]
    }

    /// Takes the root side of the link down: whatever the namespace sends is dropped (no
    /// carrier) and nothing reaches it, so its connections hang rather than fail, as in a
    /// real partition.
    fn cut(&self) {
        ip(&["link", "set", &self.root_if, "down"]);
    }

    fn heal(&self) {
        ip(&["link", "set", &self.root_if, "up"]);
    }

    /// Best effort: also clears what a killed earlier run of this pid left.
    fn remove(&self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_if])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Ids of the tasks for which a worker logged `message` (its JSON log lines name the task in
/// their span).
fn logged(out: &Output, message: &str) -> HashSet<String> {
    out.lines()
        .iter()
        .filter(|l| l.contains(message))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["span"]["task_id"].as_str().map(str::to_owned))
        .collect()
}

const REFUSED: &str = "its outcome was not recorded";

/// Waits until worker `pid`'s heartbeat (written after `since`) lists none of `ids` as
/// running: the attempt of a task counts as running until its outcome was sent and
/// answered.
async fn settled(
    http: &reqwest::Client,
    base: &str,
    pid: u32,
    ids: &[String],
    since: DateTime<Utc>,
) {
    wait_for(
        &format!("worker {pid} to have settled its outcomes"),
        Duration::from_secs(30),
        || async {
            let list: Value = http
                .get(format!("{base}/v1/workers"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let me = list["workers"]
                .as_array()?
                .iter()
                .find(|w| w["pid"] == pid)?;
            let busy = me["running_ids"]
                .as_array()?
                .iter()
                .any(|id| ids.iter().any(|mine| id == mine.as_str()));
            (time_of(&me["last_seen"])? > since && !busy).then_some(())
        },
    )
    .await;
}

/// Worker A runs inside the namespace, worker B outside. A runs 4 tasks that may retry
/// (`rerun-*`) and 4 with one attempt (`once-*`), all `sleep 8 s`; then its link goes down.
/// With A's leases lapsed (3 s), B's upkeep re-queues the `rerun` tasks, which B runs as
/// attempt 2, and ends the `once` tasks `failed` (`worker_lost`); those the test retries by
/// hand, so B runs them as a new attempt 1: the attempt number A holds too. The link comes
/// back once B runs all 8 and A's own 8 attempts have ended (A's outcomes wait for Redis).
/// A's late outcomes must all be refused: each record keeps B's run (its worker and
/// attempt, and a finish no sooner than B's sleep could end), A logs each as not recorded,
/// B's are all recorded, and each task's outcome is recorded once. A, which nobody
/// restarts, must then run new tasks (queue `after`, which A alone serves).
#[tokio::test]
#[ignore = "chaos: heavy, needs root (ip netns); `just chaos` runs it"]
async fn partitioned_worker_is_fenced_out_and_recovers_by_itself() {
    let net = Netns::create();
    let redis = RedisServer::start_args(&[
        "--bind",
        "127.0.0.1",
        &net.root_ip,
        "--protected-mode",
        "no",
    ])
    .await;
    let errand = Errand::new(&redis);
    let prefix = prefix_of(&errand);
    let _api = errand.spawn_api().await;
    let url = format!("redis://{}:{}", net.root_ip, redis.port());
    let json_logs = ("ERRAND__LOG__FORMAT", "json");
    let (a, a_out) = errand
        .spawn_worker_via(
            &net.exec(),
            &[("ERRAND__REDIS__URL", &url), json_logs],
            &["--queues", "default=8,after=4"],
        )
        .await;
    let a_pid = a.child.id().expect("running");
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let secs = 8.0;

    let mut ids = Vec::new();
    for (group, max_attempts) in [("rerun", 3), ("once", 1)] {
        for i in 0..4 {
            let r = submit(
                &http,
                &base,
                json!({"kind": "sleep", "id": format!("{group}-{i}"),
                "max_attempts": max_attempts, "payload": {"duration_secs": secs}}),
            )
            .await;
            ids.push(id_of(&r));
        }
    }
    let (rerun, once) = ids.split_at(4);
    let conn = redis.conn().await;
    wait_for(
        "worker A (in the namespace) to run all 8 tasks",
        Duration::from_secs(20),
        || {
            let (mut conn, prefix, ids) = (conn.clone(), &prefix, &ids);
            async move {
                let snap = snapshot(&mut conn, prefix, ids).await;
                snap.iter()
                    .all(|(s, w, _)| s == "running" && pid_of(w) == Some(a_pid))
                    .then_some(())
            }
        },
    )
    .await;
    // B starts only now, so A got every task.
    let (b, b_out) = errand
        .spawn_worker_via(&[], &[json_logs], &["--queues", "default=8"])
        .await;
    let b_pid = b.child.id().expect("running");

    net.cut();
    let cut_at = Instant::now();
    // The `once` tasks end `failed` (no attempt left) once A's leases lapse; run them again.
    for id in once {
        let r = wait_for(
            &format!("{id} to fail with worker_lost"),
            Duration::from_secs(20),
            || async {
                let r = errand_testkit::api::get(&http, &base, id).await;
                (r["state"] == "failed").then_some(r)
            },
        )
        .await;
        assert_eq!(r["error"]["kind"], "worker_lost", "{r}");
        let res = http
            .post(format!("{base}/v1/tasks/{id}/retry"))
            .send()
            .await
            .expect("retry");
        assert!(res.status().is_success(), "retry {id}: {}", res.status());
    }
    wait_for(
        "worker B to run all 8 tasks (rerun-* as attempt 2, once-* as a new attempt 1)",
        Duration::from_secs(20),
        || {
            let (mut conn, prefix, ids) = (conn.clone(), &prefix, &ids);
            async move {
                let snap = snapshot(&mut conn, prefix, ids).await;
                snap.iter()
                    .zip(0..)
                    .all(|((s, w, a), i)| {
                        let want = if i < 4 { 2 } else { 1 };
                        s == "running" && pid_of(w) == Some(b_pid) && *a == want
                    })
                    .then_some(())
            }
        },
    )
    .await;
    let taken_over = cut_at.elapsed();
    wait_for(
        "worker A's own 8 attempts to end (their outcomes waiting for Redis)",
        Duration::from_secs(20),
        || async { (logged(&a_out, "attempt succeeded").len() == ids.len()).then_some(()) },
    )
    .await;
    net.heal();
    let cut_for = cut_at.elapsed();
    let healed = Instant::now();
    let healed_utc = Utc::now();
    assert!(
        cut_for > Duration::from_secs(3),
        "cut for {cut_for:?}: longer than the 3 s lease"
    );

    // A recovers by itself: it serves `after` alone.
    let mut after = Vec::new();
    for i in 0..4 {
        let r = submit(
            &http,
            &base,
            json!({"kind": "noop", "queue": "after", "id": format!("after-{i}"), "payload": {"i": i}}),
        )
        .await;
        after.push(id_of(&r));
    }
    for id in &after {
        let r =
            errand_testkit::api::wait_state(&http, &base, id, "succeeded", Duration::from_secs(60))
                .await;
        assert_eq!(pid_of(r["worker"].as_str().unwrap()), Some(a_pid), "{r}");
    }
    let recovery = healed.elapsed();

    wait_all_terminal(&redis, &prefix, &ids, Duration::from_secs(30)).await;
    settled(&http, &base, a_pid, &ids, healed_utc).await;
    settled(&http, &base, b_pid, &ids, healed_utc).await;
    let recs = records(&http, &base, &ids).await;
    let a_refused = logged(&a_out, REFUSED);
    let b_refused = logged(&b_out, REFUSED);
    let recorded = finishes(&redis, &prefix, "default", "n").await;
    let late_recorded: Vec<&String> = ids.iter().filter(|id| !a_refused.contains(*id)).collect();
    eprintln!(
        "chaos[partition] tasks={} rerun_attempt2={} retried_attempt1={} lease_ms=3000 \
         taken_over_ms={} cut_ms={} late_refused={}/{} late_recorded={late_recorded:?} \
         b_refused={} recorded_finishes={recorded} recovery_ms={}",
        ids.len(),
        rerun.len(),
        once.len(),
        taken_over.as_millis(),
        cut_for.as_millis(),
        a_refused.len(),
        ids.len(),
        b_refused.len(),
        recovery.as_millis()
    );
    drop((a, b));

    for (r, i) in recs.iter().zip(0..) {
        let want_attempt = if i < 4 { 2 } else { 1 };
        assert_eq!(r["state"], "succeeded", "{r}");
        assert_eq!(r["attempt"], want_attempt, "{r}");
        assert_eq!(pid_of(r["worker"].as_str().unwrap()), Some(b_pid), "{r}");
        // The recorded outcome is B's run: it cannot end before B's sleep did.
        let ran = time_of(&r["finished_at"]).unwrap() - time_of(&r["started_at"]).unwrap();
        assert!(
            ran.num_milliseconds() as f64 >= secs * 1000.0,
            "{}: recorded {} ms after B started it, before B's {secs} s sleep could end: \
             A's late outcome was recorded over B's attempt; {r}",
            id_of(r),
            ran.num_milliseconds()
        );
    }
    assert_eq!(
        a_refused,
        ids.iter().cloned().collect::<HashSet<_>>(),
        "every late outcome of the cut-off worker is refused"
    );
    assert!(
        b_refused.is_empty(),
        "B's outcomes were all recorded: {b_refused:?}"
    );
    assert_eq!(
        recorded,
        ids.len() as u64,
        "each task's outcome recorded once"
    );
    assert!(
        recovery < Duration::from_secs(30),
        "recovered after {recovery:?}"
    );
}
