//! Production settings end to end, with the real binaries: Redis with a password, an ACL
//! user and TLS for both the api and the worker; the api refusing to start open; keys from
//! the environment, scoped, and never in the logs.

use std::{process::Stdio, time::Duration};

use errand_testkit::api::{submit, wait_state};
use errand_testkit::{Errand, Proc, RedisServer, bin_path, free_port, listening_port, wait_for};
use serde_json::{Value, json};

/// Runs `tasks` noop tasks through `errand`'s api and worker, plus one long-poll (the api's
/// own pub/sub connection) and asserts they all succeed.
async fn round_trip(errand: &Errand, tasks: usize) {
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let mut ids = Vec::new();
    for i in 0..tasks {
        let r = submit(&http, &base, json!({"kind": "noop", "payload": {"i": i}})).await;
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        wait_state(&http, &base, id, "succeeded", Duration::from_secs(20)).await;
    }
    let r = submit(
        &http,
        &base,
        json!({"kind": "sleep", "payload": {"duration_secs": 0.3}}),
    )
    .await;
    let id = r["id"].as_str().unwrap();
    let started = std::time::Instant::now();
    let done: Value = http
        .get(format!("{base}/v1/tasks/{id}?wait=15"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the long-poll answered on the task's event"
    );
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn redis_password_and_acl_user_work_in_the_api_and_the_worker() {
    let redis = RedisServer::start_args(&["--requirepass", "default-user-password"]).await;
    let mut c = redis.conn().await;
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "errand",
            "on",
            ">errand-user-password",
            "~*",
            "&*",
            "+@all",
        ])
        .query_async(&mut c)
        .await
        .unwrap();
    let port = redis.port();
    // The api logs in as the ACL user, the worker with requirepass's password.
    let api = Errand::new(&redis).with(
        "ERRAND__REDIS__URL",
        &format!("redis://errand:errand-user-password@127.0.0.1:{port}"),
    );
    let mut worker_env = api.env.clone();
    worker_env.push((
        "ERRAND__REDIS__URL".into(),
        format!("redis://:default-user-password@127.0.0.1:{port}"),
    ));
    let _api = api.spawn_api().await;
    let _worker = Proc::spawn("errand-worker", &[], &worker_env);
    round_trip(&api, 20).await;

    // Without the password: 503 naming the cause, not a 500 or a hang.
    let wrong = Errand::new(&redis).with(
        "ERRAND__REDIS__URL",
        &format!("redis://errand:wrong@127.0.0.1:{port}"),
    );
    let _wrong_api = wrong.spawn_api().await;
    let res = reqwest::get(format!("{}/readyz", wrong.base_url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://errand.dev/problems/store-auth-failed"
    );
}

#[tokio::test]
async fn tls_works_in_the_api_and_the_worker_and_the_certificate_is_verified() {
    let redis = RedisServer::start_tls(&[]).await;
    let ca = redis.tls().unwrap().ca_file.to_string_lossy().into_owned();
    assert!(redis.url().starts_with("rediss://"));
    // The api trusts the test CA through redis.tls_ca_file; the worker through the system
    // trust store's override (SSL_CERT_FILE), which its pub/sub connections use too.
    let errand = Errand::new(&redis).with("ERRAND__REDIS__TLS_CA_FILE", &ca);
    let _api = errand.spawn_api().await;
    let _worker = errand.spawn_worker(&[]);
    let mut worker_env = errand.env.clone();
    worker_env.retain(|(k, _)| k != "ERRAND__REDIS__TLS_CA_FILE");
    worker_env.push(("SSL_CERT_FILE".into(), ca.clone()));
    let _worker2 = Proc::spawn("errand-worker", &[], &worker_env);
    round_trip(&errand, 20).await;
    let workers: Value = reqwest::get(format!("{}/v1/workers", errand.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        workers["workers"].as_array().map(Vec::len),
        Some(2),
        "{workers}"
    );

    // An api that does not trust the CA (the system's roots only) never talks to this Redis.
    let untrusting = Errand::new(&redis);
    let _u = untrusting.spawn_api().await;
    let res = reqwest::get(format!("{}/readyz", untrusting.base_url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
}

/// `ERRAND_ENV=production` without a key: the api exits at once, saying how to set one.
/// With keys from the environment (comma-separated, scoped) it serves, and no key appears
/// in its logs.
#[tokio::test]
async fn production_api_refuses_to_run_open_and_never_logs_its_keys() {
    let redis = RedisServer::start().await;
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
    let out = tokio::process::Command::new(bin_path("errand-api"))
        .env("ERRAND_ENV", "production")
        .env("ERRAND_CONFIG_DIR", config)
        .env("ERRAND__REDIS__URL", redis.url())
        .env("ERRAND__API__HOST", "127.0.0.1")
        .env("ERRAND__API__PORT", "0")
        .env_remove("ERRAND__API__API_KEYS")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out)
        .await
        .expect("exits at once")
        .unwrap();
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("ERRAND__API__API_KEYS"), "{said}");
    assert!(said.contains("allow_anonymous"), "{said}");

    const READ: &str = "read-0123456789abcdef";
    const SUBMIT: &str = "submit-0123456789abcdef";
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut api = tokio::process::Command::new(bin_path("errand-api"))
        .env("ERRAND_ENV", "production")
        .env("ERRAND_CONFIG_DIR", config)
        .env("ERRAND__REDIS__URL", redis.url())
        .env("ERRAND__API__HOST", "127.0.0.1")
        .env("ERRAND__API__PORT", "0")
        .env(
            "ERRAND__API__API_KEYS",
            format!("read:{READ},submit:{SUBMIT}"),
        )
        .env("RUST_LOG", "debug")
        .stdout(log.reopen().unwrap())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Port 0: the port it bound is in its listening line.
    let port = wait_for(
        "the api to log its port",
        Duration::from_secs(20),
        || async {
            let logged = std::fs::read_to_string(log.path()).ok()?;
            logged.lines().find_map(listening_port)
        },
    )
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_for("the api to serve", Duration::from_secs(20), || async {
        let r = http.get(format!("{base}/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    let post = |key: &'static str| {
        http.post(format!("{base}/v1/tasks"))
            .bearer_auth(key)
            .json(&json!({"kind": "noop", "payload": {}}))
            .send()
    };
    assert_eq!(post(READ).await.unwrap().status(), 403);
    assert_eq!(post(SUBMIT).await.unwrap().status(), 202);
    let listed = http
        .get(format!("{base}/v1/tasks"))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(post("not-a-key-0123456789").await.unwrap().status(), 401);
    let _ = api.kill().await;
    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        logged.contains("task accepted"),
        "requests were logged: {logged}"
    );
    for secret in [READ, SUBMIT, "not-a-key-0123456789"] {
        assert!(!logged.contains(secret), "a key is in the log");
    }
}

/// Redis refusing writes (out of memory, then a read-only replica) while tasks are queued
/// and running: the api answers 503 naming the cause, the worker process stays up, and
/// every task accepted before finishes once Redis takes writes again.
#[tokio::test]
async fn the_worker_rides_out_redis_refusing_writes() {
    let redis = RedisServer::start().await;
    let errand = Errand::new(&redis);
    let _api = errand.spawn_api().await;
    let mut worker = errand.spawn_worker(&[]);
    let http = reqwest::Client::new();
    let base = errand.base_url();
    let mut ids = Vec::new();
    for _ in 0..24 {
        let r = submit(
            &http,
            &base,
            json!({"kind": "sleep", "payload": {"duration_secs": 1}}),
        )
        .await;
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    wait_state(&http, &base, &ids[0], "running", Duration::from_secs(10)).await;

    let c = redis.conn().await;
    let run = |args: &'static [&'static str]| {
        let mut c = c.clone();
        async move {
            let _: redis::Value = redis::cmd(args[0])
                .arg(&args[1..])
                .query_async(&mut c)
                .await
                .unwrap();
        }
    };
    run(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]).await;
    run(&["DEBUG", "POPULATE", "60000", "fill", "64"]).await;
    run(&["CONFIG", "SET", "maxmemory", "3mb"]).await;
    let refused = http
        .post(format!("{base}/v1/tasks"))
        .json(&json!({"kind": "noop", "payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://errand.dev/problems/store-out-of-memory"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker is still up"
    );

    // Out of memory no more, but a replica now (what a failover leaves behind).
    let nowhere = free_port().to_string();
    let _: () = redis::cmd("REPLICAOF")
        .arg(&["127.0.0.1", &nowhere])
        .query_async(&mut c.clone())
        .await
        .unwrap();
    run(&["CONFIG", "SET", "maxmemory", "0"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker is still up"
    );
    run(&["REPLICAOF", "NO", "ONE"]).await;

    for id in &ids {
        wait_state(&http, &base, id, "succeeded", Duration::from_secs(60)).await;
    }
    let after = submit(&http, &base, json!({"kind": "noop", "payload": {}})).await;
    wait_state(
        &http,
        &base,
        after["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the same worker process did it all"
    );
}
