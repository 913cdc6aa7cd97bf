//! Bounds in the document: those the handlers take from settings are written in from the
//! same settings, and the literals of `#[schema(...)]` are held to errand-core's constants.

use errand_core::Settings;
use serde_json::{Value, json};

/// The bounds that handlers take from settings.
pub(super) fn settings_bounds(doc: &mut Value, settings: &Settings) {
    let api = &settings.api;
    set_param(
        doc,
        "/v1/tasks/{id}",
        "get",
        "wait",
        "maximum",
        json!(api.max_wait_secs),
    );
    set_param(
        doc,
        "/tasks/celery/task",
        "post",
        "duration",
        "maximum",
        json!(settings.tasks.max_sleep_secs),
    );
    let tasks = &mut doc["components"]["schemas"]["SubmitBatch"]["properties"]["tasks"];
    tasks["minItems"] = json!(1);
    tasks["maxItems"] = json!(api.max_batch);
}

/// Sets `keyword` in the schema of query parameter `name` of `method path`.
fn set_param(doc: &mut Value, path: &str, method: &str, name: &str, keyword: &str, v: Value) {
    let params = doc["paths"][path][method]["parameters"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("{method} {path} has parameters"));
    let p = params
        .iter_mut()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has parameter {name}"));
    p["schema"][keyword] = v;
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use utoipa::OpenApi;

    use crate::{openapi::ApiDoc, routes};

    /// utoipa takes only literals in `#[schema(...)]`, so the documented bounds are copies;
    /// this holds each copy to the constant the handlers validate against.
    #[test]
    fn documented_input_bounds_are_the_validated_ones() {
        use errand_core::{
            schedule::ScheduleId,
            task::{QueueName, TaskId, bounds},
        };
        let mut api = ApiDoc::openapi();
        api.merge(routes::tutorial::TutorialDoc::openapi());
        let raw = serde_json::to_value(api).unwrap();
        let num = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
        for name in ["SubmitTask", "CreateSchedule", "StepRequest"] {
            let p = &raw["components"]["schemas"][name]["properties"];
            let range = |field: &str, lo: f64, hi: f64| {
                let f = &p[field];
                if lo > 0.0 {
                    assert_eq!(num(&f["minimum"]), lo, "{name}.{field}");
                }
                assert_eq!(num(&f["maximum"]), hi, "{name}.{field}");
            };
            let (lo, hi) = bounds::MAX_ATTEMPTS.into_inner();
            range("max_attempts", lo.into(), hi.into());
            let (lo, hi) = bounds::TIMEOUT_SECS.into_inner();
            range("timeout_secs", lo as f64, hi as f64);
            let (lo, hi) = bounds::RESULT_TTL_SECS.into_inner();
            range("result_ttl_secs", lo as f64, hi as f64);
            if name != "CreateSchedule" {
                let (lo, hi) = bounds::PRIORITY.into_inner();
                range("priority", lo.into(), hi.into());
            }
            if name == "SubmitTask" {
                let (lo, hi) = bounds::DELAY_SECS.into_inner();
                range("delay_secs", lo as f64, hi as f64);
                let (lo, hi) = bounds::UNIQUE_FOR_SECS.into_inner();
                range("unique_for_secs", lo as f64, hi as f64);
                let (lo, hi) = bounds::PRIORITY.into_inner();
                range("priority", lo.into(), hi.into());
            }
            assert_eq!(p["queue"]["pattern"], QueueName::PATTERN, "{name}.queue");
        }
        // Every queue parameter, and every id pattern, wherever the document states one.
        let mut queue_params = 0;
        let mut stack = vec![&raw];
        while let Some(v) = stack.pop() {
            if v["name"] == "queue" && v["schema"].is_object() {
                queue_params += 1;
                assert_eq!(v["schema"]["pattern"], QueueName::PATTERN, "{v}");
            }
            if let Some(p) = v["pattern"].as_str() {
                let max = if p == "^[A-Za-z0-9_:-]{1,48}$" {
                    errand_core::workflow::WorkflowId::MAX_LEN
                } else if p == "^[A-Za-z0-9_-]{1,64}$" {
                    errand_core::workflow::MAX_STEP_NAME
                } else if p.contains(':') {
                    TaskId::MAX_LEN
                } else if p.contains("_.-") {
                    QueueName::MAX_LEN
                } else {
                    ScheduleId::MAX_LEN
                };
                assert!(p.ends_with(&format!("{{1,{max}}}$")), "{p}");
            }
            match v {
                Value::Object(m) => stack.extend(m.values()),
                Value::Array(a) => stack.extend(a),
                _ => {}
            }
        }
        assert!(queue_params >= 3, "{queue_params} queue parameters");
    }
}
