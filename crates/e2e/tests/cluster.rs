//! errand on a real Redis Cluster (3 masters, 3 replicas on loopback): the e2e core, and a
//! master killed mid-load. Queues are chosen so that they land on different masters.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use errand_testkit::{
    Errand,
    api::{get, submit, wait_state},
    cluster::RedisCluster,
    wait_for,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

fn queues_flag(queues: &[String], concurrency: usize) -> String {
    queues
        .iter()
        .map(|q| format!("{q}={concurrency}"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn read(http: &reqwest::Client, url: String) -> Value {
    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {url}");
    res.json().await.unwrap()
}

/// The e2e suite's core on a cluster, in one deployment: submit and poll, long-poll, SSE,
/// cancel and retry, a delayed task, a schedule, a batch across queues on three masters,
/// listing across queues page by page, `/v1/queues`, `/v1/workers`, and a SIGKILLed worker's
/// task recovered by the other worker.
#[tokio::test]
async fn the_e2e_core_runs_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let queues = cluster.queues_on_distinct_masters(3).await;
    let errand = Errand::at(&cluster.url());
    let _api = errand.spawn_api().await;
    let flag = queues_flag(&queues, 4);
    let w1 = errand.spawn_worker(&["--queues", &flag]);
    let w2 = errand.spawn_worker(&["--queues", &flag]);
    let http = reqwest::Client::new();
    let base = errand.base_url();

    // Submit and poll, in each queue (each on its own master).
    for q in &queues {
        let r = submit(
            &http,
            &base,
            json!({"kind": "noop", "queue": q, "payload": {"q": q}}),
        )
        .await;
        let done = wait_state(
            &http,
            &base,
            r["id"].as_str().unwrap(),
            "succeeded",
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(done["queue"], q.as_str());
        assert_eq!(done["attempt"], 1);
    }

    // Long-poll answers when the task ends.
    let r = submit(
        &http,
        &base,
        json!({"kind": "sleep", "queue": queues[1], "payload": {"duration_secs": 0.5}}),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_owned();
    let t0 = Instant::now();
    let polled = read(&http, format!("{base}/v1/tasks/{id}?wait=20")).await;
    assert_eq!(polled["state"], "succeeded", "{polled}");
    assert!(t0.elapsed() < Duration::from_secs(10));

    // SSE: every change until terminal.
    let r = submit(
        &http,
        &base,
        json!({"kind": "sleep", "queue": queues[2], "payload": {"duration_secs": 1}}),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_owned();
    let res = http
        .get(format!("{base}/v1/tasks/{id}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The stream ends after the terminal state.
    let text = tokio::time::timeout(Duration::from_secs(15), res.text())
        .await
        .expect("the stream ends after the terminal state")
        .unwrap();
    assert!(
        text.contains("running") && text.contains("succeeded"),
        "SSE: {text}"
    );

    // Cancel a delayed task, retry it; it then runs.
    let r = submit(
        &http,
        &base,
        json!({"kind": "noop", "queue": queues[0], "delay_secs": 60}),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(r["state"], "scheduled");
    let res = http
        .post(format!("{base}/v1/tasks/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "cancel {}", res.status());
    assert_eq!(get(&http, &base, &id).await["state"], "cancelled");
    let res = http
        .post(format!("{base}/v1/tasks/{id}/retry"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "retry {}", res.status());
    wait_state(&http, &base, &id, "succeeded", Duration::from_secs(10)).await;

    // A delay runs when due.
    let r = submit(
        &http,
        &base,
        json!({"kind": "noop", "queue": queues[1], "delay_secs": 1}),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_owned();
    let done = wait_state(&http, &base, &id, "succeeded", Duration::from_secs(10)).await;
    assert!(
        done["started_at"].as_str() >= done["scheduled_for"].as_str(),
        "{done}"
    );

    // Idempotent submit: the same id again answers the first record.
    let again = http
        .post(format!("{base}/v1/tasks"))
        .json(&json!({"kind": "noop", "id": id, "queue": queues[2]}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json::<Value>().await.unwrap()["queue"],
        queues[1].as_str()
    );

    // A schedule fires into its queue.
    let res = http
        .post(format!("{base}/v1/schedules"))
        .json(&json!({"id": "tick", "cron": "*/1 * * * * *", "kind": "noop", "queue": queues[2]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    wait_for(
        "the schedule to fire twice",
        Duration::from_secs(15),
        || {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let s = read(&http, format!("{base}/v1/schedules/tick")).await;
                (s["run_count"].as_u64() >= Some(2)).then_some(s)
            }
        },
    )
    .await;
    let res = http
        .delete(format!("{base}/v1/schedules/tick"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // A batch across the three queues: 90 tasks, 30 per master.
    let tasks: Vec<Value> = (0..90)
        .map(|i| json!({"kind": "noop", "queue": queues[i % 3], "id": format!("b-{i}")}))
        .collect();
    let res = http
        .post(format!("{base}/v1/tasks/batch"))
        .json(&json!({"tasks": tasks}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "batch {}", res.status());
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["created"], 90);
    for i in 0..90 {
        wait_state(
            &http,
            &base,
            &format!("b-{i}"),
            "succeeded",
            Duration::from_secs(20),
        )
        .await;
    }

    // Listing across queues, page by page: every batch task once, newest first.
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/tasks?limit=7");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = read(&http, url).await;
        for t in page["tasks"].as_array().unwrap() {
            listed.push((
                t["created_at"].as_str().unwrap().to_owned(),
                t["id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let ids: HashSet<&str> = listed.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), listed.len(), "no task listed twice");
    for i in 0..90 {
        assert!(ids.contains(format!("b-{i}").as_str()), "b-{i} listed");
    }
    // Newest first by the index's score, which is Redis's clock at creation; `created_at`
    // is the api's clock, and each queue's create is a call of its own, so neighbours from
    // different queues may disagree by a few ms.
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    let skew = chrono::Duration::milliseconds(250);
    for w in listed.windows(2) {
        assert!(at(&w[0].0) + skew >= at(&w[1].0), "newest first: {w:?}");
    }

    // /v1/queues and /v1/workers.
    let qs = read(&http, format!("{base}/v1/queues")).await;
    let names: Vec<&str> = qs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    for q in &queues {
        assert!(names.contains(&q.as_str()), "{q} in {qs}");
    }
    let ws = read(&http, format!("{base}/v1/workers")).await;
    assert_eq!(ws["workers"].as_array().unwrap().len(), 2, "{ws}");

    // A SIGKILLed worker's running task is run again by the other worker.
    let mut victims = Vec::new();
    for q in &queues {
        let r = submit(
            &http,
            &base,
            json!({"kind": "sleep", "queue": q, "payload": {"duration_secs": 3}}),
        )
        .await;
        victims.push(r["id"].as_str().unwrap().to_owned());
    }
    // Whichever worker runs one of them is killed (which one fetches first is a race).
    let pids = [w1.pid().as_raw(), w2.pid().as_raw()];
    let (on_victim, which) = wait_for(
        "a sleep task to run on a worker",
        Duration::from_secs(10),
        || {
            let (http, base, victims) = (http.clone(), base.clone(), victims.clone());
            async move {
                for v in &victims {
                    let t = get(&http, &base, v).await;
                    let worker = t["worker"].as_str().unwrap_or("").to_owned();
                    if t["state"] == "running"
                        && let Some(i) =
                            pids.iter().position(|p| worker.contains(&format!(":{p}:")))
                    {
                        return Some((v.clone(), i));
                    }
                }
                None
            }
        },
    )
    .await;
    [&w1, &w2][which].signal(Signal::SIGKILL);
    let done = wait_state(
        &http,
        &base,
        &on_victim,
        "succeeded",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done["attempt"], 2, "re-run after its worker died: {done}");
    for v in &victims {
        wait_state(&http, &base, v, "succeeded", Duration::from_secs(30)).await;
    }
}

/// A master is SIGKILLed while tasks are being submitted to queues on every master; its
/// replica is promoted. Submits to the other masters keep succeeding; those to the killed
/// one answer 503 with Retry-After for at most the failover window, then succeed again
/// without a restart. Every accepted task ends `succeeded`; what asynchronous replication
/// lost, if anything, is counted and reported.
#[tokio::test]
async fn a_master_fails_over_mid_load_and_the_api_recovers_by_itself() {
    let mut cluster = RedisCluster::start().await;
    let queues = cluster.queues_on_distinct_masters(3).await;
    let errand = Errand::at(&cluster.url());
    let _api = errand.spawn_api().await;
    let flag = queues_flag(&queues, 8);
    let _w1 = errand.spawn_worker(&["--queues", &flag]);
    let _w2 = errand.spawn_worker(&["--queues", &flag]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = errand.base_url();
    let victim_queue = queues[0].clone();
    let victim = cluster.master_of(&format!("{{{victim_queue}}}")).await;

    let load = {
        let (http, base, queues) = (http.clone(), base.clone(), queues.clone());
        tokio::spawn(async move {
            let mut accepted: Vec<String> = Vec::new();
            let mut unavailable: Vec<(Instant, String)> = Vec::new();
            let mut missing_retry_after = 0;
            let started = Instant::now();
            let mut i = 0usize;
            while started.elapsed() < Duration::from_secs(16) {
                let q = &queues[i % queues.len()];
                let id = format!("f-{i}");
                i += 1;
                match http
                    .post(format!("{base}/v1/tasks"))
                    .json(&json!({"kind": "noop", "queue": q, "id": id}))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => accepted.push(id),
                    Ok(r) if r.status() == 503 => {
                        if r.headers().get("retry-after").is_none() {
                            missing_retry_after += 1;
                        }
                        unavailable.push((Instant::now(), q.clone()));
                    }
                    Ok(r) => panic!(
                        "submit answered {}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    ),
                    Err(e) => unavailable.push((Instant::now(), format!("{q} ({e})"))),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (accepted, unavailable, missing_retry_after)
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let killed_at = Instant::now();
    cluster.kill(victim).await;
    let (accepted, unavailable, missing_retry_after) = load.await.unwrap();
    cluster.wait_ok().await;
    let promoted = cluster.master_of(&format!("{{{victim_queue}}}")).await;
    assert_ne!(
        promoted, victim,
        "a replica took over the killed master's slots"
    );

    assert_eq!(missing_retry_after, 0, "every 503 carries Retry-After");
    let window = unavailable
        .iter()
        .map(|(t, _)| t.saturating_duration_since(killed_at))
        .max()
        .unwrap_or_default();
    let other_queue_failures = unavailable
        .iter()
        .filter(|(_, q)| !q.starts_with(&victim_queue))
        .count();
    // The api recovered by itself: a submit to the failed-over queue succeeds now.
    let after = submit(&http, &base, json!({"kind": "noop", "queue": victim_queue})).await;
    wait_state(
        &http,
        &base,
        after["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(20),
    )
    .await;

    // Every accepted task ends; count those the failover lost (acknowledged by the old
    // master, not yet replicated when it died).
    let mut states: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lost = Vec::new();
    for id in &accepted {
        loop {
            let res = http.get(format!("{base}/v1/tasks/{id}")).send().await;
            let Ok(res) = res else { continue };
            if res.status() == 404 {
                lost.push(id.clone());
                break;
            }
            if res.status() != 200 {
                continue;
            }
            let t: Value = res.json().await.unwrap();
            let s = t["state"].as_str().unwrap().to_owned();
            if s == "succeeded" || s == "failed" || s == "cancelled" || Instant::now() > deadline {
                *states.entry(s).or_default() += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "cluster[failover]: accepted {} tasks; terminal {:?}; lost to asynchronous replication {}; \
         503s/transport errors {} (of which on other masters {}), last {:.1} s after the kill; \
         promoted {} -> {}",
        accepted.len(),
        states,
        lost.len(),
        unavailable.len(),
        other_queue_failures,
        window.as_secs_f64(),
        victim,
        promoted
    );
    assert!(accepted.len() > 100, "load ran: {}", accepted.len());
    assert_eq!(
        states.get("succeeded").copied().unwrap_or(0) + lost.len(),
        accepted.len(),
        "{states:?}"
    );
    assert!(
        window < Duration::from_secs(10),
        "unavailable for {window:?} after the kill"
    );
    // Replication to the replica is asynchronous: a handful of acknowledged writes may be
    // lost in the last milliseconds before the kill, never more than a moment's worth.
    assert!(
        lost.len() <= 20,
        "lost {} accepted tasks: {lost:?}",
        lost.len()
    );
}
