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
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(schemas[name].is_object(), "dangling $ref {r}");
    }
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
