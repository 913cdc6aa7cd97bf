//! The OpenAPI documents: served, complete, and true to the routes and bounds.

use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn openapi_document_is_valid_3_1_and_lists_every_route() {
    let app = spawn_app().await;
    let text = app.get("/openapi.json").await.text().await.unwrap();
    let spec = oas3::from_json(&text).expect("a valid OpenAPI 3.1 document");
    assert!(spec.openapi.starts_with("3.1"), "{}", spec.openapi);
    let doc: Value = serde_json::from_str(&text).unwrap();
    for (path, method) in [
        ("/v1/tasks", "post"),
        ("/v1/tasks/{id}", "get"),
        ("/v1/tasks", "get"),
        ("/v1/tasks/batch", "post"),
        ("/v1/tasks/{id}/events", "get"),
        ("/v1/tasks/{id}/cancel", "post"),
        ("/v1/tasks/{id}/retry", "post"),
        ("/v1/queues", "get"),
        ("/v1/workers", "get"),
        ("/v1/kinds", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} documented");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} has responses"
        );
    }
    let schemas = &doc["components"]["schemas"];
    for s in [
        "TaskRecord",
        "TaskState",
        "Problem",
        "SubmitTask",
        "SleepPayload",
        "KindInfo",
    ] {
        assert!(schemas[s].is_object(), "schema {s}");
    }
    assert!(
        doc["paths"]["/v1/tasks"]["post"]["requestBody"]["content"]["application/json"]["example"]
            .is_object()
            || schemas["SubmitTask"]["example"].is_object(),
        "submit has an example"
    );
    // Every $ref resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let target = doc.pointer(r.trim_start_matches('#'));
        assert!(target.is_some_and(Value::is_object), "dangling $ref {r}");
    }
}

/// `/openapi/product.json` is the same API without the tutorial routes and what only they use.
#[tokio::test]
async fn the_product_document_leaves_the_tutorial_out() {
    let app = spawn_app().await;
    let full: Value = app.get("/openapi.json").await.json().await.unwrap();
    let text = app.get("/openapi/product.json").await.text().await.unwrap();
    oas3::from_json(&text).expect("a valid OpenAPI 3.1 document");
    let product: Value = serde_json::from_str(&text).unwrap();
    let paths =
        |d: &Value| -> Vec<String> { d["paths"].as_object().unwrap().keys().cloned().collect() };
    let tutorial: Vec<String> = paths(&full)
        .into_iter()
        .filter(|p| p.starts_with("/async") || p.starts_with("/tasks/"))
        .collect();
    assert_eq!(tutorial.len(), 9, "{tutorial:?}");
    for p in paths(&full) {
        let op = full["paths"][&p]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap();
        let is_tutorial = op["tags"] == serde_json::json!(["tutorial"]);
        assert_eq!(
            is_tutorial,
            tutorial.contains(&p),
            "{p} is tagged by what it is"
        );
        assert_eq!(
            product["paths"].get(&p).is_some(),
            !is_tutorial,
            "{p} in the product document"
        );
        if !is_tutorial {
            assert_eq!(product["paths"][&p], full["paths"][&p], "{p} unchanged");
        }
    }
    let schemas = |d: &Value| -> Vec<String> {
        d["components"]["schemas"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    for s in ["CeleryTask", "Timeline", "ProbeReport", "BackgroundStatus"] {
        assert!(!schemas(&product).contains(&s.to_owned()), "{s} left out");
    }
    for s in [
        "SubmitTask",
        "SubmitSleep",
        "SleepPayload",
        "SleepResult",
        "TaskEvent",
    ] {
        assert!(schemas(&product).contains(&s.to_owned()), "{s} kept");
    }
    // In the full document the tutorial's tag comes last, grouped apart.
    let tags = full["tags"].as_array().unwrap();
    assert_eq!(tags.last().unwrap()["name"], "tutorial");
    assert!(
        tags.last().unwrap()["description"]
            .as_str()
            .unwrap()
            .starts_with("Tutorial")
    );
    assert_eq!(
        full["x-tagGroups"][1]["tags"],
        serde_json::json!(["tutorial"])
    );
    assert!(
        product["tags"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != "tutorial")
    );
}

#[tokio::test]
async fn swagger_ui_is_served_offline() {
    let app = spawn_app().await;
    let res = app.get("/docs/").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.text().await.unwrap().contains("swagger"),
        "Swagger UI page"
    );
    let res = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(res.status(), 200, "bundled assets, no CDN");
    let res = app
        .http
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "/docs redirects to the UI");
}

/// Submits accept `callback`, records show `webhook`, and the message a callback receives is
/// documented as an OpenAPI webhook, in the product document too.
#[tokio::test]
async fn callbacks_and_their_webhook_are_documented() {
    let app = spawn_app().await;
    let doc: Value = app.get("/openapi/product.json").await.json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    let submit = &schemas["SubmitNoop"]["properties"]["callback"];
    assert!(
        submit.to_string().contains("#/components/schemas/Callback"),
        "{submit}"
    );
    assert_eq!(schemas["Callback"]["required"], serde_json::json!(["url"]));
    let record = &schemas["NoopTaskRecord"];
    assert!(
        record["required"]
            .as_array()
            .unwrap()
            .contains(&"webhook".into())
    );
    assert!(schemas["WebhookStatus"]["properties"]["attempts"].is_object());
    let hook = &doc["webhooks"]["taskEnded"]["post"];
    let headers: Vec<&str> = hook["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        headers,
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    );
    assert_eq!(
        schemas["WebhookPayload"]["properties"]["type"]["enum"],
        serde_json::json!(["task.succeeded", "task.failed", "task.cancelled"])
    );
}
