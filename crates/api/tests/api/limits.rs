//! Flow control over HTTP: a queue's limits set and read at runtime, what they hold back,
//! and a submit's priority and concurrency key (docs/flow-control.md).

use serde_json::{Value, json};

use crate::helpers::{problem, spawn_app};

#[tokio::test]
async fn limits_are_set_read_back_replaced_and_show_what_they_hold() {
    let app = spawn_app().await;
    let url = format!("{}/v1/queues/partner/limits", app.base);
    let none: Value = app
        .get("/v1/queues/partner/limits")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        none["limits"],
        json!({"rate": null, "kinds": {}, "per_key": null})
    );
    let put = app
        .http
        .put(&url)
        .json(
            &json!({"rate": {"count": 500, "period_ms": 1000, "burst": 50},
            "kinds": {"long_running": {"count": 1, "period_ms": 60000}}, "per_key": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let set: Value = put.json().await.unwrap();
    // The kind's alias is stored under its canonical name; burst defaults to 1.
    assert_eq!(
        set["limits"],
        json!({"rate": {"count": 500, "period_ms": 1000, "burst": 50},
            "kinds": {"sleep": {"count": 1, "period_ms": 60000, "burst": 1}}, "per_key": 1})
    );
    // Two tasks of one key: with no worker nothing is held yet; the held counts are there.
    for _ in 0..2 {
        let r = app
            .post_task(
                &json!({"kind": "sleep", "queue": "partner", "payload": {"duration_secs": 1},
                "concurrency_key": "customer-7", "priority": 8}),
            )
            .await;
        assert_eq!(r.status(), 202);
        let rec: Value = r.json().await.unwrap();
        assert_eq!(
            (rec["priority"].clone(), rec["concurrency_key"].clone()),
            (json!(8), json!("customer-7"))
        );
    }
    let got: Value = app
        .get("/v1/queues/partner/limits")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["limits"], set["limits"]);
    assert_eq!(
        got["held"],
        json!({"throttled": 0, "waiting_for_key": 0, "keys": []})
    );
    // A PUT replaces every limit.
    let put = app
        .http
        .put(&url)
        .json(&json!({"per_key": 3}))
        .send()
        .await
        .unwrap();
    let set: Value = put.json().await.unwrap();
    assert_eq!(
        set["limits"],
        json!({"rate": null, "kinds": {}, "per_key": 3})
    );
}

#[tokio::test]
async fn a_limit_that_does_not_fit_is_a_422_naming_it() {
    let app = spawn_app().await;
    let url = format!("{}/v1/queues/partner/limits", app.base);
    for (body, field) in [
        (
            json!({"rate": {"count": 0, "period_ms": 1000}}),
            "rate.count",
        ),
        (
            json!({"rate": {"count": 5, "period_ms": 0}}),
            "rate.period_ms",
        ),
        (
            json!({"rate": {"count": 5, "period_ms": 1000, "burst": 0}}),
            "rate.burst",
        ),
        (
            json!({"kinds": {"nope": {"count": 5, "period_ms": 1000}}}),
            "kinds.nope",
        ),
        (
            json!({"kinds": {"sleep": {"count": 5, "period_ms": 100000000}}}),
            "kinds.sleep.period_ms",
        ),
        (json!({"per_key": 0}), "per_key"),
    ] {
        let res = app.http.put(&url).json(&body).send().await.unwrap();
        let p = problem(res, 422).await;
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    let res = app
        .http
        .put(&url)
        .json(&json!({"rates": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "an unknown field");
    let res = app
        .http
        .put(format!("{}/v1/queues/bad%20name/limits", app.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 400).await["field"], "queue");
}

#[tokio::test]
async fn a_priority_or_key_that_does_not_fit_is_a_422_naming_it() {
    let app = spawn_app().await;
    for (extra, field) in [
        (json!({"priority": 0}), "priority"),
        (json!({"priority": 10}), "priority"),
        (json!({"concurrency_key": "a b"}), "concurrency_key"),
        (json!({"concurrency_key": ""}), "concurrency_key"),
    ] {
        let mut body = json!({"kind": "sleep", "payload": {"duration_secs": 1}});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let p = problem(app.post_task(&body).await, 422).await;
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    let rec: Value = app
        .post_task(&json!({"kind": "sleep", "payload": {"duration_secs": 1}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (rec["priority"].clone(), rec["concurrency_key"].clone()),
        (json!(5), Value::Null)
    );
}
