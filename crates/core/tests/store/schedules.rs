//! The schedule store against a real redis-server: many firers racing for one tick.

use std::{sync::Arc, time::Duration};

use chrono::{SubsecRound, Utc};
use errand_core::{
    TaskStore,
    schedule::{Misfire, NewSchedule, ScheduleId, ScheduleTemplate},
};
use errand_testkit::RedisServer;

use crate::helpers::store_on;
use serde_json::json;
use tokio::sync::Barrier;

/// 16 firers, each on its own connection as separate worker processes would be, look at the
/// same due tick at once, 50 times over: every tick creates exactly one task, however the
/// race goes, and the race does happen (some firers find the tick taken).
#[tokio::test]
async fn each_due_tick_is_fired_by_exactly_one_of_many_racing_firers() {
    const FIRERS: usize = 16;
    const TICKS: usize = 50;
    let redis = RedisServer::start().await;
    let firers: Vec<TaskStore> = (0..FIRERS).map(|_| store_on(&redis, "race")).collect();
    let admin = store_on(&redis, "race");
    let mut lost = 0;
    for round in 0..TICKS {
        let now = Utc::now().trunc_subsecs(3);
        let def = NewSchedule {
            id: ScheduleId::parse(&format!("s{round}")).unwrap(),
            // Next due in a year, so only the tick planted below is due during the round.
            cron: "0 0 1 1 *".into(),
            timezone: "UTC".into(),
            misfire: Misfire::RunOnce,
            enabled: true,
            task: ScheduleTemplate {
                kind: "noop".into(),
                payload: json!({"round": round}),
                queue: "default".into(),
                max_attempts: 1,
                timeout_secs: None,
                result_ttl_secs: 60,
            },
        };
        let tick = now - chrono::Duration::milliseconds(1);
        admin.create_schedule(&def, Some(tick), now).await.unwrap();

        let barrier = Arc::new(Barrier::new(FIRERS));
        let reports = futures::future::join_all(firers.iter().cloned().map(|s| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                s.fire_due_schedules(100, Duration::from_secs(1))
                    .await
                    .unwrap()
            })
        }))
        .await;
        let reports: Vec<_> = reports.into_iter().map(Result::unwrap).collect();
        let fired: Vec<_> = reports.iter().flat_map(|r| r.fired.clone()).collect();
        assert_eq!(
            fired,
            vec![def.id.task_id(tick)],
            "round {round}: one task, with the tick's id"
        );
        lost += reports.iter().map(|r| r.lost).sum::<usize>();

        let task = admin.get(&def.id.task_id(tick)).await.unwrap().unwrap();
        assert_eq!(task.schedule_id.as_deref(), Some(def.id.as_str()));
        assert_eq!(task.payload, json!({"round": round}));
        let s = admin.schedule(&def.id).await.unwrap().unwrap();
        assert_eq!(s.run_count, 1);
        assert_eq!(s.last_task_id, Some(def.id.task_id(tick)));
        assert!(s.next_run_at.unwrap() > now, "moved on to its next tick");
    }
    println!(
        "{TICKS} ticks × {FIRERS} racing firers: {TICKS} tasks; {lost} fire attempts found their tick taken"
    );
    assert!(lost > 0, "the firers never raced; the test proved nothing");
}
