//! The tutorial routes apart: their tag last and grouped alone in `/openapi.json`, and
//! `/openapi/product.json` the document without them, for generating clients.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{PRODUCT_PATH, TUTORIAL_TAG};

/// `/openapi/product.json`: the document without the tutorial's routes and the schemas only
/// they use, so a product client is generated without them.
pub fn product(full: &Value) -> Value {
    let mut doc = full.clone();
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.retain(|_, item| !operations(item).all(|(_, op)| is_tutorial(op)));
    }
    if let Some(tags) = doc["tags"].as_array_mut() {
        tags.retain(|t| t["name"] != TUTORIAL_TAG);
    }
    if let Some(groups) = doc["x-tagGroups"].as_array_mut() {
        groups.retain(|g| {
            !g["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!(TUTORIAL_TAG)))
        });
    }
    let description = doc["info"]["description"].as_str().unwrap_or_default();
    doc["info"]["description"] = json!(format!(
        "{description}\n\nThis is the product API alone; `/openapi.json` also has the \
         tutorial routes."
    ));
    prune_schemas(&mut doc);
    doc
}

fn operations(item: &Value) -> impl Iterator<Item = (&String, &Value)> {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    item.as_object()
        .into_iter()
        .flatten()
        .filter(|(m, _)| METHODS.contains(&m.as_str()))
}

fn is_tutorial(op: &Value) -> bool {
    op["tags"]
        .as_array()
        .is_some_and(|t| t.contains(&json!(TUTORIAL_TAG)))
}

/// The tutorial tag goes last, described as such, and ReDoc groups it apart.
pub(super) fn tutorial_last(doc: &mut Value) {
    let Some(tags) = doc["tags"].as_array_mut() else {
        return;
    };
    let (mut tutorial, mut product): (Vec<Value>, Vec<Value>) =
        tags.drain(..).partition(|t| t["name"] == TUTORIAL_TAG);
    for t in &mut tutorial {
        let d = t["description"].as_str().unwrap_or_default();
        t["description"] = json!(format!(
            "Tutorial, not product API: {d} `{PRODUCT_PATH}` is this document without them."
        ));
    }
    let names: Vec<Value> = product.iter().map(|t| t["name"].clone()).collect();
    product.append(&mut tutorial);
    *tags = product;
    doc["x-tagGroups"] = json!([
        {"name": "API", "tags": names},
        {"name": "Tutorial", "tags": [TUTORIAL_TAG]},
    ]);
}

/// Drops the schemas nothing left in the document refers to, directly or through others.
fn prune_schemas(doc: &mut Value) {
    fn refs(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref")
                    && let Some(name) = r.strip_prefix("#/components/schemas/")
                {
                    out.insert(name.to_owned());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let schemas = doc["components"]["schemas"].take();
    let mut root = doc.clone();
    root["components"]["schemas"] = json!({});
    let mut keep = BTreeSet::new();
    refs(&root, &mut keep);
    let mut todo: Vec<String> = keep.iter().cloned().collect();
    while let Some(name) = todo.pop() {
        let mut found = BTreeSet::new();
        refs(&schemas[&name], &mut found);
        for f in found {
            if keep.insert(f.clone()) {
                todo.push(f);
            }
        }
    }
    let kept: Map<String, Value> = schemas
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| keep.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    doc["components"]["schemas"] = Value::Object(kept);
}
