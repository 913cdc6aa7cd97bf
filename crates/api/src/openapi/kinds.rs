//! The submit, schedule and record schemas as unions discriminated on `kind`, one branch
//! per kind, so each kind's payload (and result) schema applies.

use std::collections::BTreeSet;

use errand_core::store::KindDefinition;
use serde_json::{Map, Value, json};

use super::{DocKind, schema_ref};

/// `fan_out` → `FanOut`: the kind's part of its branch names.
fn pascal(kind: &str) -> String {
    kind.split(|c: char| !c.is_ascii_alphanumeric())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// One branch of a kind union: the derived base object with `kind` pinned to the kind (and,
/// where the server accepts them, its aliases) and `payload`/`result` given the kind's
/// schemas, under component names of their own (`payload`, `result`).
struct Branch<'a> {
    doc: &'a DocKind,
    kind: &'a KindDefinition,
    payload: String,
    result: String,
}

impl Branch<'_> {
    fn kind_property(&self, with_aliases: bool) -> Value {
        let mut names = vec![self.kind.name.as_str()];
        if with_aliases {
            names.extend(self.kind.aliases.iter().map(String::as_str));
        }
        let description = if names.len() > 1 {
            format!(
                "`{}` (or its alias {})",
                self.kind.name,
                names[1..]
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("`{}`", self.kind.name)
        };
        json!({ "type": "string", "enum": names, "description": description })
    }

    fn payload_property(&self, base: &Value) -> Value {
        let mut p = schema_ref(&self.payload);
        if let Some(d) = base["properties"]["payload"]["description"].as_str() {
            p["description"] = json!(d);
        }
        p
    }
}

/// Replaces `wire::SubmitTask`, `wire::CreateSchedule` and `TaskRecord` by unions over the catalog's
/// kinds, discriminated on `kind`. The derived schemas serve as each branch's base, so a
/// field added to the Rust type appears in every branch.
pub(super) fn kind_unions(doc: &mut Value, kinds: &[DocKind]) {
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has schemas");
    // A registered component name is kept unless it is empty, not a plain name, errand's
    // own or another kind's: two workers' kinds may both call their payload `Payload`.
    let mut taken: BTreeSet<String> = schemas.keys().cloned().collect();
    let mut name_for = |wanted: &str, fallback: String| {
        let plain = !wanted.is_empty()
            && wanted
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        let mut name = if plain && !taken.contains(wanted) {
            wanted.to_owned()
        } else {
            fallback
        };
        let base = name.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        taken.insert(name.clone());
        name
    };
    let branches: Vec<Branch<'_>> = kinds
        .iter()
        .map(|doc| {
            let kind = &doc.definition;
            let p = pascal(&kind.name);
            Branch {
                doc,
                kind,
                payload: name_for(&kind.payload_name, format!("{p}Payload")),
                result: name_for(&kind.result_name, format!("{p}Result")),
            }
        })
        .collect();
    for b in &branches {
        schemas.insert(b.payload.clone(), b.kind.payload_schema.clone());
        schemas.insert(b.result.clone(), b.kind.result_schema.clone());
    }

    union(
        schemas,
        "SubmitTask",
        &branches,
        true,
        |b| format!("Submit{}", pascal(&b.kind.name)),
        |b, base| {
            let mut s = base.clone();
            s["description"] = json!(format!("A `{}` task: {}", b.kind.name, b.kind.summary));
            s["properties"]["kind"] = b.kind_property(true);
            s["properties"]["payload"] = b.payload_property(base);
            s["required"] = if b.doc.payload_optional {
                json!(["kind"])
            } else {
                json!(["kind", "payload"])
            };
            s["example"] = json!({ "kind": b.kind.name, "payload": b.kind.example });
            s
        },
    );
    union(
        schemas,
        "CreateSchedule",
        &branches,
        true,
        |b| format!("CreateSchedule{}", pascal(&b.kind.name)),
        |b, base| {
            let mut s = base.clone();
            s["description"] = json!(format!(
                "A schedule of `{}` tasks: {}",
                b.kind.name, b.kind.summary
            ));
            s["properties"]["kind"] = b.kind_property(true);
            s["properties"]["payload"] = b.payload_property(base);
            s["required"] = if b.doc.payload_optional {
                json!(["cron", "kind"])
            } else {
                json!(["cron", "kind", "payload"])
            };
            s["example"] = json!({
                "id": format!("every-minute-{}", b.kind.name.replace('_', "-")),
                "cron": "0 * * * * *",
                "kind": b.kind.name,
                "payload": b.kind.example,
            });
            s
        },
    );
    union(
        schemas,
        "TaskRecord",
        &branches,
        false,
        |b| format!("{}TaskRecord", pascal(&b.kind.name)),
        |b, base| {
            let mut s = base.clone();
            s["description"] = json!(format!("A `{}` task's record.", b.kind.name));
            // Records carry the canonical name, never an alias.
            s["properties"]["kind"] = b.kind_property(false);
            s["properties"]["payload"] = b.payload_property(base);
            s["properties"]["result"] = json!({
                "description": base["properties"]["result"]["description"],
                "anyOf": [schema_ref(&b.result), {"type": "null"}],
            });
            // Every field is sent, null when it has no value.
            s["required"] = json!(
                base["properties"]
                    .as_object()
                    .map(|p| p.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
            );
            s
        },
    );
    // Batch items are submits; the derived schema already points there.
    debug_assert_eq!(
        schemas["SubmitBatch"]["properties"]["tasks"]["items"],
        schema_ref("SubmitTask")
    );
    // The derived record says "any object"; the union says which.
    if let Some(d) = schemas["TaskRecord"]["description"].as_str() {
        schemas["TaskRecord"]["description"] = json!(format!(
            "{d} One shape per task kind, told apart by `kind`; only kinds this server \
             offers are listed (a record of a kind it no longer offers still has the common \
             fields)."
        ));
    }
}

/// Makes `schemas[name]` a `oneOf` of one branch per kind, each built by `make` from the
/// derived schema, with a discriminator mapping every accepted name to its branch.
fn union(
    schemas: &mut Map<String, Value>,
    name: &str,
    branches: &[Branch<'_>],
    with_aliases: bool,
    branch_name: impl Fn(&Branch<'_>) -> String,
    make: impl Fn(&Branch<'_>, &Value) -> Value,
) {
    let base = schemas.remove(name).expect("derived base schema");
    let mut one_of = Vec::new();
    let mut mapping = Map::new();
    for b in branches {
        let n = branch_name(b);
        schemas.insert(n.clone(), make(b, &base));
        one_of.push(schema_ref(&n));
        let target = format!("#/components/schemas/{n}");
        mapping.insert(b.kind.name.clone(), json!(target));
        if with_aliases {
            for a in &b.kind.aliases {
                mapping.insert(a.clone(), json!(target));
            }
        }
    }
    let mut u = json!({
        "oneOf": one_of,
        "discriminator": { "propertyName": "kind", "mapping": mapping },
    });
    for key in ["description", "example"] {
        if let Some(v) = base.get(key) {
            u[key] = v.clone();
        }
    }
    schemas.insert(name.to_owned(), u);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_pascal_case() {
        assert_eq!(pascal("fan_out"), "FanOut");
        assert_eq!(pascal("sha256"), "Sha256");
        assert_eq!(pascal("sleep"), "Sleep");
    }
}
