//! Unique for a while (`NewTask::unique`): one task per key and queue inside the window,
//! answered to every duplicate; a new task after it, or once the holder is gone. Against a
//! real redis-server and a real Redis Cluster (where the key lives in the queue's slot and a
//! duplicate must leave no id claim behind).

use std::time::Duration;

use chrono::Utc;
use errand_testkit::{RedisServer, cluster::RedisCluster, wait_for};

use super::bounds_tests::cluster_store;
use super::pause::tests::{store, task};
use super::{Layout, NewTask, Submitted, TaskStore, Unique};

fn unique(queue: &str, key: &str, for_secs: u64) -> NewTask {
    let mut t = task(queue);
    t.unique = Some(Unique {
        key: key.into(),
        for_secs,
    });
    t
}

fn id_of(s: &Submitted) -> String {
    match s {
        Submitted::Created(r) | Submitted::Existing(r) | Submitted::Duplicate(r) => {
            r.id.to_string()
        }
    }
}

async fn key_gone(s: &TaskStore, key: &str) {
    wait_for(
        "the unique key to lapse",
        Duration::from_secs(10),
        || async {
            let mut c = s.connection();
            let n: i64 = redis::cmd("EXISTS")
                .arg(key)
                .query_async(&mut c)
                .await
                .ok()?;
            (n == 0).then_some(())
        },
    )
    .await;
}

async fn the_rules(s: &TaskStore, prefix: &str) {
    let l = Layout::new(prefix);
    let now = Utc::now();
    let first = s.submit(unique("q", "refresh:7", 60), now).await.unwrap();
    assert!(matches!(first, Submitted::Created(_)), "{first:?}");
    let holder = id_of(&first);

    // Inside the window: the first task, whatever the new id; nothing created.
    let again = unique("q", "refresh:7", 60);
    let dup_id = again.id.clone();
    let dup = s.submit(again, now).await.unwrap();
    assert!(
        matches!(&dup, Submitted::Duplicate(r) if r.id.as_str() == holder),
        "{dup:?}"
    );
    assert!(s.get_in("q", dup_id.as_str()).await.unwrap().is_none());
    let mut c = s.connection();
    let queued: i64 = redis::cmd("ZCARD")
        .arg(l.state_index("q", "queued"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(queued, 1);

    // The key is held for the window, no longer.
    let ttl: i64 = redis::cmd("PTTL")
        .arg(l.unique("q", "refresh:7"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");

    // Per queue: the same key elsewhere is another task.
    let other = s.submit(unique("q2", "refresh:7", 60), now).await.unwrap();
    assert!(matches!(other, Submitted::Created(_)), "{other:?}");

    // One batch: the first takes the key, the second is answered with it.
    let out = s
        .submit_many(vec![unique("q3", "k", 60), unique("q3", "k", 60)], now)
        .await
        .unwrap();
    assert!(matches!(out[0], Submitted::Created(_)), "{out:?}");
    assert!(
        matches!(&out[1], Submitted::Duplicate(r) if r.id.to_string() == id_of(&out[0])),
        "{out:?}"
    );

    // After the window: a new task.
    let short = s.submit(unique("q4", "w", 1), now).await.unwrap();
    key_gone(s, &l.unique("q4", "w")).await;
    let after = s.submit(unique("q4", "w", 1), Utc::now()).await.unwrap();
    assert!(matches!(after, Submitted::Created(_)), "{after:?}");
    assert_ne!(id_of(&after), id_of(&short));

    // A holder gone before the window ends (its record expired) frees the key.
    let gone = s.submit(unique("q5", "g", 600), now).await.unwrap();
    redis::cmd("DEL")
        .arg(l.record("q5", &id_of(&gone)))
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let fresh = s.submit(unique("q5", "g", 600), Utc::now()).await.unwrap();
    assert!(matches!(fresh, Submitted::Created(_)), "{fresh:?}");

    // An existing id with another task's key: the id's own task.
    let mut own = task("q6");
    let own_id = own.id.clone();
    s.submit(own.clone(), now).await.unwrap();
    own.unique = Some(Unique {
        key: "refresh:7".into(),
        for_secs: 60,
    });
    s.submit(unique("q6", "refresh:7", 60), now).await.unwrap();
    let replay = s.submit(own, now).await.unwrap();
    assert!(
        matches!(&replay, Submitted::Existing(r) if r.id == own_id),
        "{replay:?}"
    );

    // The same id again is the idempotent answer, not a duplicate.
    let mut same = unique("q6", "s", 60);
    let made = s.submit(same.clone(), now).await.unwrap();
    same.payload = serde_json::json!({"duration_secs": 0});
    let replay = s.submit(same, now).await.unwrap();
    assert!(
        matches!(&replay, Submitted::Existing(r) if r.id.to_string() == id_of(&made)),
        "{replay:?}"
    );
}

#[tokio::test]
async fn a_unique_key_answers_its_task_inside_the_window_and_frees_after() {
    let redis = RedisServer::start().await;
    let s = store(&redis).await;
    the_rules(&s, "p").await;
}

#[tokio::test]
async fn a_unique_key_on_a_cluster_lives_in_its_queues_slot_and_leaves_no_claim() {
    let cluster = RedisCluster::start().await;
    let s = cluster_store(&cluster, "u");
    the_rules(&s, "u").await;
    // A duplicate claims no pointer for its own id.
    s.submit(unique("c", "k", 60), Utc::now()).await.unwrap();
    let dup = unique("c", "k", 60);
    let dup_id = dup.id.clone();
    assert!(matches!(
        s.submit(dup, Utc::now()).await.unwrap(),
        Submitted::Duplicate(_)
    ));
    let mut c = s.connection();
    let ptr: Option<String> = redis::cmd("GET")
        .arg(Layout::new("u").pointer(dup_id.as_str()))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(ptr, None);
}
