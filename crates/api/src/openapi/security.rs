//! Each operation's security requirement, by the rule the API-key middleware applies, with
//! the 401 and 403 the guarded ones answer.

use serde_json::{Value, json};

use super::{PRODUCT_PATH, schema_ref};
use crate::access::scope::needs_key;

/// Routes outside the documents that are open whatever the API keys: the documents and
/// their viewers.
const DOC_ROUTES: [&str; 4] = ["/openapi.json", PRODUCT_PATH, "/docs/", "/redoc"];

/// Every operation says whether it needs the key, by the rule the middleware applies; the
/// guarded ones document the 401 it answers without a valid key and the 403 it answers to a
/// key whose scope is too weak (`access::required_scope`).
pub(super) fn security(doc: &mut Value) {
    let mut open = Vec::new();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let guarded = needs_key(path);
            for (method, op) in item.as_object_mut().into_iter().flatten() {
                if !op.is_object() || method == "parameters" {
                    continue;
                }
                if guarded {
                    op["security"] = json!([{ "bearer": [] }]);
                    op["responses"]["401"] =
                        json!({ "$ref": "#/components/responses/Unauthorized" });
                    op["responses"]["403"] = json!({ "$ref": "#/components/responses/Forbidden" });
                } else {
                    op["security"] = json!([]);
                    open.push(format!("`{} {path}`", method.to_uppercase()));
                }
            }
        }
    }
    debug_assert!(DOC_ROUTES.iter().all(|r| !needs_key(r)));
    open.extend(DOC_ROUTES.iter().map(|r| format!("`GET {r}`")));
    let description = doc["info"]["description"].as_str().unwrap_or_default();
    doc["info"]["description"] = json!(format!(
        "{description}\n\n**Authentication.** When the server has API keys (`api.api_keys`), \
         every operation that lists the `bearer` security requirement needs \
         `Authorization: Bearer <key>` and answers 401 without a valid one, 403 when the \
         key's scope is too weak (`read` for GET, `submit` for submitting, cancelling and \
         retrying tasks and the tutorial routes, `admin` for the rest). That is all of them \
         but these, which are always open: {}. Without keys configured, nothing is checked.",
        open.join(", ")
    ));
    let components = &mut doc["components"];
    components["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An entry of the server's `api.api_keys`.",
        }
    });
    components["responses"]["Forbidden"] = json!({
        "description": "The key is valid but its scope does not cover this operation",
        "content": {
            "application/problem+json": { "schema": schema_ref("Problem") }
        },
    });
    components["responses"]["Unauthorized"] = json!({
        "description": "API keys are configured and the request had none that matched",
        "headers": {
            "WWW-Authenticate": {
                "description": "`Bearer`",
                "schema": {"type": "string"},
            }
        },
        "content": {
            "application/problem+json": { "schema": schema_ref("Problem") }
        },
    });
}
