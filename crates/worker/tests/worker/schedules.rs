//! Periodic schedules end to end: the real api and worker binaries on a private Redis.

use std::time::Duration;

use chrono::{DateTime, Utc};
use errand_testkit::{Errand, RedisServer, wait_for};
use serde_json::{Value, json};

use crate::helpers::time;

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn create(&self, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}/v1/schedules", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "create {body}");
        res.json().await.unwrap()
    }

    async fn schedule(&self, id: &str) -> Value {
        let res = self
            .http
            .get(format!("{}/v1/schedules/{id}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "get schedule {id}");
        res.json().await.unwrap()
    }

    async fn post(&self, path: &str) -> reqwest::StatusCode {
        self.http
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Every task schedule `id` fired, by tick (oldest first), read from the task listing.
    async fn runs(&self, id: &str) -> Vec<Run> {
        let page: Value = self
            .http
            .get(format!("{}/v1/tasks?limit=500", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tasks = page["tasks"].as_array().unwrap();
        assert!(tasks.len() < 500, "the test outgrew one page");
        let mut runs: Vec<Run> = tasks
            .iter()
            .filter(|t| t["schedule_id"] == id)
            .map(|t| {
                let tid = t["id"].as_str().unwrap();
                let tick = tid
                    .strip_prefix(&format!("sched:{id}:"))
                    .unwrap_or_else(|| panic!("task id {tid} names its schedule and tick"))
                    .parse()
                    .unwrap();
                Run {
                    tick: DateTime::from_timestamp_millis(tick).unwrap(),
                    created: time(&t["created_at"]),
                    record: t.clone(),
                }
            })
            .collect();
        runs.sort_by_key(|r| r.tick);
        runs
    }
}

#[derive(Debug)]
struct Run {
    tick: DateTime<Utc>,
    created: DateTime<Utc>,
    record: Value,
}

fn ms(d: chrono::Duration) -> i64 {
    d.num_milliseconds()
}

/// Three workers all look for due ticks; a schedule every second fires once per tick: its
/// runs are consecutive seconds from its first tick, with no tick missing or repeated, and
/// the schedule counted exactly as many fires as there are tasks. Each run succeeds. A
/// deleted schedule fires no more; a disabled one never fires, and once enabled fires from
/// its next tick only.
#[tokio::test]
async fn every_second_fires_once_per_tick_across_three_workers() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let _workers: Vec<_> = (0..3).map(|_| errand.spawn_worker(&[])).collect();
    let api = Api {
        http: reqwest::Client::new(),
        base: errand.base_url(),
    };
    let every = |id: &str| json!({"id": id, "cron": "*/1 * * * * *", "kind": "noop", "payload": {"from": id}});

    let main = api.create(every("every-second")).await;
    let first_tick = time(&main["next_run_at"]);
    api.create(every("doomed")).await;
    let mut off = every("off");
    off["enabled"] = json!(false);
    api.create(off).await;

    // Delete `doomed` once it has run twice; whatever it fired by then is all it ever fires.
    wait_for("doomed to fire twice", Duration::from_secs(10), || async {
        (api.schedule("doomed").await["run_count"].as_u64() >= Some(2)).then_some(())
    })
    .await;
    let res = api
        .http
        .delete(format!("{}/v1/schedules/doomed", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let doomed_runs = api.runs("doomed").await.len();
    assert!(doomed_runs >= 2);
    let deleted_at = Utc::now();

    // Watch `every-second` for 4 more ticks after the delete: the window in which `doomed`
    // and `off` must stay silent.
    wait_for(
        "4 ticks of every-second after the delete",
        Duration::from_secs(15),
        || async {
            let runs = api.runs("every-second").await;
            (runs.iter().filter(|r| r.tick > deleted_at).count() >= 4).then_some(())
        },
    )
    .await;
    assert_eq!(api.post("/v1/schedules/every-second/disable").await, 200);
    let fires = api.schedule("every-second").await["run_count"]
        .as_u64()
        .unwrap() as usize;
    let runs = api.runs("every-second").await;

    assert_eq!(runs.len(), fires, "one task per fire, one fire per task");
    assert_eq!(runs[0].tick, first_tick, "the first tick fired");
    for pair in runs.windows(2) {
        assert_eq!(
            ms(pair[1].tick - pair[0].tick),
            1000,
            "ticks {} and {}: none missed or repeated",
            pair[0].tick,
            pair[1].tick
        );
    }
    assert!(runs.len() >= 6, "{} runs", runs.len());
    let mut late: Vec<i64> = runs.iter().map(|r| ms(r.created - r.tick)).collect();
    late.sort_unstable();
    println!(
        "every-second: {} ticks over {:.1} s, each fired once; fire delay after the tick: min {} ms, p50 {} ms, max {} ms",
        runs.len(),
        ms(runs.last().unwrap().tick - runs[0].tick) as f64 / 1000.0 + 1.0,
        late[0],
        late[late.len() / 2],
        late[late.len() - 1]
    );
    assert!(late[0] >= 0, "no run before its tick");

    assert_eq!(
        api.runs("doomed").await.len(),
        doomed_runs,
        "deleted: no more runs"
    );
    assert_eq!(api.runs("off").await.len(), 0, "disabled: never fired");
    assert_eq!(api.schedule("off").await["run_count"], 0);

    for run in &runs {
        let id = run.record["id"].as_str().unwrap();
        let done = errand_testkit::api::wait_state(
            &api.http,
            &api.base,
            id,
            "succeeded",
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(done["attempt"], 1, "{done}");
        assert_eq!(done["result"], json!({"from": "every-second"}));
    }

    // Enabled, `off` fires from its next tick after now: no catch-up for its disabled time.
    let enabled_at = Utc::now();
    assert_eq!(api.post("/v1/schedules/off/enable").await, 200);
    let first = wait_for(
        "off to fire once enabled",
        Duration::from_secs(10),
        || async { api.runs("off").await.into_iter().next() },
    )
    .await;
    assert!(
        first.tick > enabled_at,
        "first tick {} vs enabled at {enabled_at}",
        first.tick
    );
}

/// No worker runs for over 3 s while two every-second schedules come due. When one worker
/// starts, the `run_once` schedule runs exactly once for all its missed ticks (as the run of
/// its first missed tick) and then keeps time; the `skip` schedule drops them all.
#[tokio::test]
async fn missed_ticks_run_once_when_a_worker_comes_back_or_are_skipped() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let api = Api {
        http: reqwest::Client::new(),
        base: errand.base_url(),
    };
    let once = api
        .create(json!({"id": "once", "cron": "*/1 * * * * *", "kind": "noop"}))
        .await;
    let skip = api
        .create(json!({"id": "skip", "cron": "*/1 * * * * *", "kind": "noop", "misfire": "skip"}))
        .await;
    let missed_from = time(&once["next_run_at"]);
    assert_eq!(time(&skip["next_run_at"]), missed_from);

    // The outage: no worker while at least 3 ticks pass.
    tokio::time::sleep_until(
        tokio::time::Instant::now()
            + (missed_from - Utc::now() + chrono::Duration::milliseconds(3200))
                .to_std()
                .unwrap_or_default(),
    )
    .await;
    assert_eq!(
        api.schedule("once").await["run_count"],
        0,
        "no worker, no fire"
    );
    assert!(api.runs("once").await.is_empty());

    let worker_started = Utc::now();
    let _worker = errand.spawn_worker(&[]);
    wait_for(
        "3 runs of once and 2 of skip",
        Duration::from_secs(15),
        || async {
            let a = api.schedule("once").await["run_count"].as_u64()?;
            let b = api.schedule("skip").await["run_count"].as_u64()?;
            (a >= 3 && b >= 2).then_some(())
        },
    )
    .await;

    let once = api.runs("once").await;
    let catch_up: Vec<&Run> = once.iter().filter(|r| r.tick < worker_started).collect();
    assert_eq!(catch_up.len(), 1, "one run for every missed tick: {once:?}");
    assert_eq!(
        catch_up[0].tick, missed_from,
        "it is the first missed tick's run"
    );
    let waited = catch_up[0].created - catch_up[0].tick;
    assert!(
        ms(waited) >= 3000,
        "it ran late, after the outage: {waited}"
    );
    for pair in once.windows(2).skip(1) {
        assert_eq!(ms(pair[1].tick - pair[0].tick), 1000, "then on time");
    }
    assert!(
        once[1].tick > catch_up[0].created,
        "after the catch-up run it continues from now"
    );

    let skip = api.runs("skip").await;
    assert!(
        skip.iter().all(|r| r.tick >= worker_started),
        "skip: no missed tick ran: {skip:?}"
    );
    assert!(skip.iter().all(|r| ms(r.created - r.tick) <= 1000));
    println!(
        "outage of {} ms: once fired {} catch-up run (tick {}, {} ms late); skip fired 0; then on time",
        ms(worker_started - missed_from),
        catch_up.len(),
        catch_up[0].tick,
        ms(waited)
    );
}
