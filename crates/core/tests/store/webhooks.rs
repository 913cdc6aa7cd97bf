//! The webhook outbox against a real redis-server: every way a task ends writes its
//! delivery in the same script call, only for the events its callback asked for; claims
//! are leased and fenced.

use std::time::Duration;

use chrono::Utc;
use errand_core::{
    TaskStore,
    store::{Cancel, NewTask, Outcome, Recover, Settle},
    task::{Callback, TaskError, TaskId, WebhookEvent, WebhookState, WebhookStatus},
};
use errand_testkit::RedisServer;

use crate::helpers::store_on;
use redis::AsyncCommands;
use serde_json::json;

fn task(id: &str, max_attempts: u32, events: Option<&[WebhookEvent]>) -> NewTask {
    NewTask {
        id: TaskId::parse(id).unwrap(),
        kind: "noop".into(),
        queue: "q".into(),
        payload: json!({"big": "input the webhook leaves out"}),
        max_attempts,
        timeout_secs: None,
        result_ttl_secs: 60,
        run_at: None,
        callback: events.map(|e| Callback {
            url: "https://hooks.example.com/x".into(),
            events: e.to_vec(),
        }),
        traceparent: None,
        unique: None,
        flow: Default::default(),
        step: None,
    }
}

/// Fetches every ready task of queue `q` for one attempt.
async fn run_all(s: &TaskStore, lease: Duration) -> Vec<errand_core::store::Claimed> {
    s.fetch("q", 100, "w1", lease, &ulid(), Utc::now())
        .await
        .unwrap()
        .claimed
}

fn claim_of<'a>(
    claims: &'a [errand_core::store::Claimed],
    id: &str,
) -> &'a errand_core::store::Claimed {
    claims.iter().find(|c| c.id == id).expect("claimed")
}

fn ulid() -> String {
    format!("{:?}", std::time::SystemTime::now())
}

#[tokio::test]
async fn every_terminal_path_writes_the_deliveries_its_callback_asked_for() {
    use WebhookEvent::*;
    let redis = RedisServer::start().await;
    let s = store_on(&redis, "wh");
    let now = Utc::now();
    for t in [
        task("ok", 1, Some(&[Succeeded])),
        task("ok-unwanted", 1, Some(&[Failed])),
        task("no-callback", 1, None),
        task("fails", 1, Some(&[Failed, Cancelled])),
        task("lost", 1, Some(&ALL_OF)),
        task("cancelled-queued", 1, Some(&ALL_OF)),
    ] {
        s.submit(t, now).await.unwrap();
    }
    // Cancelled before it ran (cancel.lua).
    let id = TaskId::parse("cancelled-queued").unwrap();
    assert!(matches!(
        s.cancel(&id, now).await.unwrap(),
        Cancel::Cancelled(_)
    ));
    let claims = run_all(&s, Duration::from_millis(300)).await;
    // Ended by their attempts (finish.lua).
    for (id, outcome) in [
        ("ok", Outcome::Succeeded(json!({"n": 1}))),
        ("ok-unwanted", Outcome::Succeeded(json!({}))),
        ("no-callback", Outcome::Succeeded(json!({}))),
        (
            "fails",
            Outcome::Failed(TaskError {
                kind: "boom".into(),
                message: "it broke".into(),
            }),
        ),
    ] {
        assert!(
            s.finish(claim_of(&claims, id), &outcome, Utc::now())
                .await
                .unwrap()
        );
    }
    // `lost`'s worker stops renewing: upkeep fails it (recover.lua, last attempt).
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.recover("q", Recover::LapsedLeases, 100, Utc::now())
        .await
        .unwrap();

    let claimed = s
        .claim_webhooks("q", Duration::from_secs(30), 100)
        .await
        .unwrap();
    let mut got: Vec<(String, WebhookEvent)> = claimed
        .iter()
        .map(|c| (c.task_id.clone(), c.event))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("cancelled-queued".into(), Cancelled),
            ("fails".into(), Failed),
            ("lost".into(), Failed),
            ("ok".into(), Succeeded),
        ]
    );
    let ok = claimed.iter().find(|c| c.task_id == "ok").unwrap();
    assert_eq!(ok.id, "ok.1");
    assert_eq!(ok.attempt, 1);
    assert_eq!(ok.data["state"], "succeeded");
    assert_eq!(ok.data["result"], json!({"n": 1}));
    assert_eq!(ok.data["attempt"], 1);
    assert!(ok.data.get("payload").is_none(), "{}", ok.data);
    assert!(ok.data["finished_at"].is_string());
    let lost = claimed.iter().find(|c| c.task_id == "lost").unwrap();
    assert_eq!(lost.data["error"]["kind"], "worker_lost");

    // The record says a delivery is pending.
    let r = s.get(&TaskId::parse("ok").unwrap()).await.unwrap().unwrap();
    let w = r.webhook.unwrap();
    assert_eq!(
        (w.state, w.attempts, w.id.as_str()),
        (WebhookState::Pending, 0, "ok.1")
    );
    assert!(
        s.get(&TaskId::parse("ok-unwanted").unwrap())
            .await
            .unwrap()
            .unwrap()
            .webhook
            .is_none()
    );
}

const ALL_OF: [WebhookEvent; 3] = WebhookEvent::ALL;

#[tokio::test]
async fn a_lapsed_claim_is_due_again_and_cannot_settle_over_the_next_attempt() {
    let redis = RedisServer::start().await;
    let s = store_on(&redis, "wl");
    s.submit(task("t", 1, Some(&ALL_OF)), Utc::now())
        .await
        .unwrap();
    let claims = run_all(&s, Duration::from_secs(30)).await;
    s.finish(
        claim_of(&claims, "t"),
        &Outcome::Succeeded(json!({})),
        Utc::now(),
    )
    .await
    .unwrap();
    let lease = Duration::from_millis(200);
    let first = s.claim_webhooks("q", lease, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        s.claim_webhooks("q", lease, 10).await.unwrap().is_empty(),
        "claimed: not due while the lease runs"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = s.claim_webhooks("q", lease, 10).await.unwrap();
    assert_eq!(second.len(), 1, "due again once the claim lapsed");
    assert_eq!((second[0].id.as_str(), second[0].attempt), ("t.1", 2));

    let status = |state, attempts| WebhookStatus {
        id: "t.1".into(),
        event: WebhookEvent::Succeeded,
        state,
        attempts,
        last_status: Some(200),
        last_error: None,
        next_attempt_at: None,
        delivered_at: None,
    };
    assert!(
        !s.settle_webhook(&first[0], Settle::Done, &status(WebhookState::Failed, 1))
            .await
            .unwrap(),
        "the lapsed claim is fenced off"
    );
    assert!(
        s.settle_webhook(
            &second[0],
            Settle::Done,
            &status(WebhookState::Delivered, 2)
        )
        .await
        .unwrap()
    );
    let r = s.get(&TaskId::parse("t").unwrap()).await.unwrap().unwrap();
    assert_eq!(r.webhook.unwrap().state, WebhookState::Delivered);
    let mut c = redis.conn().await;
    let l = s.layout();
    assert_eq!(c.zcard::<_, u64>(l.webhook_due("q")).await.unwrap(), 0);
    assert!(
        !c.exists::<_, bool>(l.webhook_delivery("q", "t.1"))
            .await
            .unwrap()
    );
}

/// The receiver-side check docs/webhooks.md shows for Rust, verbatim.
mod docs_verifier {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    /// True when `timestamp` is within 5 minutes of `now` (Unix seconds) and one of the
    /// `v1,` signatures in `signature` is `secret`'s over `id.timestamp.body`.
    pub(crate) fn verify(
        secret: &str,
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> bool {
        let Some(key) = secret
            .strip_prefix("whsec_")
            .and_then(|k| STANDARD.decode(k).ok())
        else {
            return false;
        };
        match timestamp.parse::<i64>() {
            Ok(ts) if (now - ts).abs() <= 300 => {}
            _ => return false,
        }
        signature
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|s| STANDARD.decode(s).ok())
            .any(|sig| {
                let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
                mac.update(format!("{id}.{timestamp}.").as_bytes());
                mac.update(body);
                mac.verify_slice(&sig).is_ok() // constant-time comparison
            })
    }
}

#[test]
fn the_docs_rust_verifier_accepts_errands_signatures_and_nothing_else() {
    use errand_core::settings::WebhookSecret;
    let (old, new) = (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    );
    let body = br#"{"type":"task.succeeded"}"#;
    let now = 1_700_000_000;
    let header = [old, new]
        .map(|s| WebhookSecret::parse(s).unwrap().sign("t.1", now, body))
        .join(" ");
    let ts = now.to_string();
    assert!(docs_verifier::verify(old, "t.1", &ts, &header, body, now));
    assert!(docs_verifier::verify(
        new,
        "t.1",
        &ts,
        &header,
        body,
        now + 60
    ));
    assert!(!docs_verifier::verify(new, "t.1", &ts, &header, b"{}", now));
    assert!(!docs_verifier::verify(new, "t.2", &ts, &header, body, now));
    assert!(!docs_verifier::verify(
        new,
        "t.1",
        &ts,
        &header,
        body,
        now + 301
    ));
    assert!(!docs_verifier::verify(
        "whsec_eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg=",
        "t.1",
        &ts,
        &header,
        body,
        now
    ));
}
