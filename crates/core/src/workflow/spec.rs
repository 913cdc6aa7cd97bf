//! A workflow as submitted: steps (each a task of any kind, in any queue) and, per step, the
//! steps it runs after and what their failure does to it.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A workflow's id: server-made or given by the client (the submit is then idempotent).
/// `[A-Za-z0-9_:-]`, 1 to 48: no `.`, so a step's task id `<workflow>.<step>` names its
/// workflow unambiguously, and short enough that every step's id is a valid task id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkflowId(String);

/// An id that is empty, too long, or has characters outside `[A-Za-z0-9_:-]`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("a workflow id is 1 to 48 characters from A-Z a-z 0-9 _ : -")]
pub struct InvalidWorkflowId;

impl WorkflowId {
    /// Longest id a client may choose.
    pub const MAX_LEN: usize = 48;

    /// A fresh id (UUIDv7 without its dashes' meaning: sorts by creation time).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Validates a client-chosen id.
    pub fn parse(s: &str) -> Result<Self, InvalidWorkflowId> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidWorkflowId)
        }
    }

    /// The id as stored and served.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WorkflowId {
    type Error = InvalidWorkflowId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<WorkflowId> for String {
    fn from(id: WorkflowId) -> Self {
        id.0
    }
}

impl std::fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The task id of step `step` of workflow `workflow` (a spawned step's name is
/// `<map step>.<i>`).
pub fn step_task_id(workflow: &str, step: &str) -> String {
    format!("{workflow}.{step}")
}

/// The task a step runs, validated at submit and created when the step's dependencies have
/// ended (stored as json in the workflow, handed back as it is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTask {
    /// Canonical kind name.
    pub kind: String,
    /// The queue it waits in.
    pub queue: String,
    /// Its input, validated against the kind's schema.
    pub payload: Value,
    /// Attempts before it is `failed`.
    pub max_attempts: u32,
    #[serde(default)]
    /// Per-attempt time limit.
    pub timeout_secs: Option<u64>,
    /// How long its record stays readable once ended.
    pub result_ttl_secs: u64,
    #[serde(default = "default_priority")]
    /// 1 to 9, higher first.
    pub priority: u8,
    #[serde(default)]
    /// Its concurrency key.
    pub concurrency_key: Option<String>,
}

fn default_priority() -> u8 {
    crate::task::DEFAULT_PRIORITY
}

/// What a dependency that did not succeed (failed, cancelled, or its task gone) does to
/// the step after it. Chosen per dependency: there is no default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The step fails without running (`dependency_failed`), and so does what depends on it
    /// the same way.
    Fail,
    /// The step runs anyway, with the dependency's end (its error) among its inputs.
    Run,
}

impl OnFailure {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Fail => "fail",
            OnFailure::Run => "run",
        }
    }
}

/// One step it runs after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// The step's name.
    pub step: String,
    /// What its failure does to the step after it.
    pub on_failure: OnFailure,
}

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// `[A-Za-z0-9_-]`, 1 to 64, unique in the workflow.
    pub name: String,
    /// The task it runs.
    pub task: StepTask,
    /// The steps it runs after; none: it starts with the workflow.
    pub after: Vec<Dependency>,
    /// A map step: its result names tasks to spawn (`{"spawn": [...]}`), and it ends, with
    /// their results as its own, when they all have.
    pub map: bool,
}

/// A workflow to create, validated ([`NewWorkflow::check`]).
#[derive(Debug, Clone)]
pub struct NewWorkflow {
    /// Client-chosen or generated.
    pub id: WorkflowId,
    /// In the order submitted.
    pub steps: Vec<StepSpec>,
    /// Most tasks one map step may spawn (`workflows.max_fan_out`).
    pub max_fan_out: u32,
    /// How long the workflow stays readable once ended.
    pub result_ttl_secs: u64,
    /// The submit's trace context, continued by each step's task.
    pub traceparent: Option<String>,
}

/// A definition that is not a DAG of known, named steps: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The field at fault (`steps[2].after[0]`).
    pub field: String,
    /// Why.
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// Longest step name.
pub const MAX_STEP_NAME: usize = 64;

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_STEP_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

impl NewWorkflow {
    /// Holds the definition to what runs: 1 to `max_steps` steps, unique valid names,
    /// dependencies on other known steps, each named once, and no cycle (the first step on
    /// one is named).
    pub fn check(&self, max_steps: usize) -> Result<(), SpecError> {
        if self.steps.is_empty() {
            return Err(err("steps", "a workflow has at least one step"));
        }
        if self.steps.len() > max_steps {
            return Err(err(
                "steps",
                format!(
                    "{} steps; the limit is {max_steps} (workflows.max_steps)",
                    self.steps.len()
                ),
            ));
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, s) in self.steps.iter().enumerate() {
            if !valid_name(&s.name) {
                return Err(err(
                    format!("steps[{i}].name"),
                    "1 to 64 characters from A-Z a-z 0-9 _ -",
                ));
            }
            if index.insert(&s.name, i).is_some() {
                return Err(err(
                    format!("steps[{i}].name"),
                    format!("`{}` names two steps", s.name),
                ));
            }
        }
        for (i, s) in self.steps.iter().enumerate() {
            let mut seen = HashSet::new();
            for (j, d) in s.after.iter().enumerate() {
                let field = format!("steps[{i}].after[{j}]");
                if d.step == s.name {
                    return Err(err(field, "a step cannot run after itself"));
                }
                if !index.contains_key(d.step.as_str()) {
                    return Err(err(field, format!("no step is named `{}`", d.step)));
                }
                if !seen.insert(d.step.as_str()) {
                    return Err(err(field, format!("`{}` is named twice", d.step)));
                }
            }
        }
        // Kahn's algorithm: what never reaches in-degree 0 is on (or after) a cycle.
        let mut indegree: Vec<usize> = self.steps.iter().map(|s| s.after.len()).collect();
        let next = self.dependents();
        let mut ready: VecDeque<usize> = (0..self.steps.len())
            .filter(|&i| indegree[i] == 0)
            .collect();
        let mut done = 0;
        while let Some(i) = ready.pop_front() {
            done += 1;
            for &n in &next[i] {
                indegree[n] -= 1;
                if indegree[n] == 0 {
                    ready.push_back(n);
                }
            }
        }
        if done < self.steps.len() {
            let i = (0..self.steps.len())
                .find(|&i| indegree[i] > 0)
                .expect("some step is left");
            return Err(err(
                format!("steps[{i}].after"),
                format!(
                    "step `{}` is on a cycle of dependencies",
                    self.steps[i].name
                ),
            ));
        }
        Ok(())
    }

    /// Per step, the indexes of the steps that run after it.
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let index: HashMap<&str, usize> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let mut next = vec![Vec::new(); self.steps.len()];
        for (i, s) in self.steps.iter().enumerate() {
            for d in &s.after {
                if let Some(&p) = index.get(d.step.as_str()) {
                    next[p].push(i);
                }
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> StepTask {
        StepTask {
            kind: "noop".into(),
            queue: "default".into(),
            payload: Value::Null,
            max_attempts: 1,
            timeout_secs: None,
            result_ttl_secs: 60,
            priority: 5,
            concurrency_key: None,
        }
    }

    fn wf(steps: &[(&str, &[&str])]) -> NewWorkflow {
        NewWorkflow {
            id: WorkflowId::parse("w").unwrap(),
            steps: steps
                .iter()
                .map(|(n, after)| StepSpec {
                    name: (*n).into(),
                    task: task(),
                    after: after
                        .iter()
                        .map(|a| Dependency {
                            step: (*a).into(),
                            on_failure: OnFailure::Fail,
                        })
                        .collect(),
                    map: false,
                })
                .collect(),
            max_fan_out: 10,
            result_ttl_secs: 60,
            traceparent: None,
        }
    }

    #[test]
    fn a_dag_passes_and_every_fault_is_named_by_its_field() {
        assert_eq!(
            wf(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])]).check(10),
            Ok(())
        );
        let field = |w: NewWorkflow| w.check(10).unwrap_err().field;
        assert_eq!(field(wf(&[])), "steps");
        assert_eq!(field(wf(&[("a", &[]), ("a", &[])])), "steps[1].name");
        assert_eq!(field(wf(&[("a.b", &[])])), "steps[0].name");
        assert_eq!(field(wf(&[("a", &["a"])])), "steps[0].after[0]");
        assert_eq!(field(wf(&[("a", &["zz"])])), "steps[0].after[0]");
        assert_eq!(
            field(wf(&[("a", &[]), ("b", &["a", "a"])])),
            "steps[1].after[1]"
        );
        assert_eq!(
            field(wf(&[
                ("a", &[]),
                ("b", &["a", "d"]),
                ("c", &["b"]),
                ("d", &["c"])
            ])),
            "steps[1].after"
        );
        let many: Vec<(String, Vec<&str>)> = (0..11).map(|i| (format!("s{i}"), vec![])).collect();
        let refs: Vec<(&str, &[&str])> = many
            .iter()
            .map(|(n, a)| (n.as_str(), a.as_slice()))
            .collect();
        assert_eq!(field(wf(&refs)), "steps");
    }

    #[test]
    fn workflow_ids_leave_room_for_step_ids_and_have_no_dot() {
        assert!(WorkflowId::parse("order-42:nightly_1").is_ok());
        assert!(WorkflowId::parse("a.b").is_err());
        assert!(WorkflowId::parse(&"x".repeat(49)).is_err());
        let longest = step_task_id(&"x".repeat(48), &format!("{}.{}", "s".repeat(64), 99_999));
        assert!(crate::task::TaskId::parse(&longest).is_ok());
    }
}
