//! What utoipa writes that client generators misread, rewritten as they read it: a
//! description beside a nullable `$ref`, a null parameter, an optional `Location`.

use serde_json::{Map, Value, json};

/// utoipa writes a nullable reference as `oneOf: [{type: null}, {$ref, description}]`;
/// generators read the description of the property, not of a `oneOf` branch, so it moves up.
pub(super) fn hoist_ref_siblings(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for key in ["oneOf", "anyOf"] {
                let Some(Value::Array(items)) = m.get_mut(key) else {
                    continue;
                };
                if !items.iter().any(|i| i == &json!({"type": "null"})) {
                    continue;
                }
                let mut lifted = Map::new();
                for i in items.iter_mut() {
                    if let Some(obj) = i.as_object_mut()
                        && obj.contains_key("$ref")
                    {
                        obj.retain(|k, v| {
                            if k == "$ref" {
                                true
                            } else {
                                lifted.insert(k.clone(), v.clone());
                                false
                            }
                        });
                    }
                }
                for (k, v) in lifted {
                    m.entry(k).or_insert(v);
                }
            }
            m.values_mut().for_each(hoist_ref_siblings);
        }
        Value::Array(a) => a.iter_mut().for_each(hoist_ref_siblings),
        _ => {}
    }
}

/// A query or header parameter is absent or a string, never JSON null, so `Option<T>`'s
/// null goes; the `Location` header is sent with every response that documents it.
pub(super) fn parameters_and_headers(doc: &mut Value) {
    for (_, item) in doc["paths"].as_object_mut().into_iter().flatten() {
        for (_, op) in item.as_object_mut().into_iter().flatten() {
            // `get_mut`, not indexing: indexing a JSON object inserts what it does not find.
            let params = op.get_mut("parameters").and_then(Value::as_array_mut);
            for p in params.into_iter().flatten() {
                let schema = p.get_mut("schema");
                if let Some(types) = schema.and_then(|s| s.get_mut("type")) {
                    if let Some(list) = types.as_array_mut() {
                        list.retain(|t| t != "null");
                    }
                    if let Some([only]) = types.as_array().map(Vec::as_slice) {
                        *types = only.clone();
                    }
                }
            }
            let responses = op.get_mut("responses").and_then(Value::as_object_mut);
            for (_, res) in responses.into_iter().flatten() {
                if let Some(location) = res.get_mut("headers").and_then(|h| h.get_mut("Location")) {
                    location["required"] = json!(true);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_beside_a_nullable_ref_moves_to_the_property() {
        let mut v = json!({"properties": {"error": {"oneOf": [
            {"type": "null"},
            {"$ref": "#/components/schemas/TaskError", "description": "why"},
        ]}}});
        hoist_ref_siblings(&mut v);
        assert_eq!(
            v,
            json!({"properties": {"error": {"description": "why", "oneOf": [
                {"type": "null"},
                {"$ref": "#/components/schemas/TaskError"},
            ]}}})
        );
    }
}
