//! Workflows (`workflow.lua`): create one whole, read it, list them, cancel one. Each
//! workflow's hash lives in one of [`WORKFLOW_SHARDS`] slots of its own, apart from its
//! steps' queues; a step is a task in its queue, created when its dependencies have ended.
//! How a step's end reaches its workflow is `workflow_ends`.

use std::{collections::HashMap, time::Duration};

use chrono::Utc;
use futures::StreamExt;

use super::{
    Flow, NewTask, StepOf, StoreError, Submitted, TaskStore,
    layout::{WORKFLOW_SHARDS, workflow_shard},
    script::script,
};
use crate::{
    task::{TaskId, TaskState},
    workflow::{
        NewWorkflow, StepRecord, StepState, StepTask, WorkflowRecord, WorkflowState,
        WorkflowSummary, step_task_id,
    },
};

static WORKFLOW: std::sync::LazyLock<redis::Script> = script!("workflow.lua");

/// How long a running workflow may go untouched before upkeep looks at it (creates what
/// should exist, cancels what should not, and applies again the state of every started
/// step's task): the bound on how long a crash between two calls can hold a workflow up.
pub const WORKFLOW_STALL: Duration = Duration::from_secs(30);

/// What a workflow submit did.
#[derive(Debug)]
pub enum WorkflowSubmitted {
    /// Created; its first steps are queued.
    Created(WorkflowRecord),
    /// A workflow with this id exists; nothing was written.
    Existing(WorkflowRecord),
}

/// A step `workflow.lua` says to create.
#[derive(Debug, Clone, Default)]
pub(super) struct Create {
    pub step: String,
    /// Its task (json, [`StepTask`]).
    pub task: String,
    /// Its inputs (json).
    pub inputs: String,
    /// A spawned step's map step (its entry's payload is taken from that step's raw result,
    /// as it returned it: [`Applied::sources`]); '' for a step of the definition.
    pub spawned_from: String,
}

/// What one `workflow.lua` call answered.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// The workflow's state after the call (`gone`: no such workflow).
    pub state: String,
    /// Steps to create now.
    pub creates: Vec<Create>,
    /// Task ids to cancel.
    pub cancels: Vec<String>,
    /// (`advance` only) steps whose task should exist, with their queues.
    pub started: Vec<(String, String)>,
    pub traceparent: Option<String>,
    /// The call's ms (Redis's clock): for `create`, when the workflow was created.
    pub created_ms: Option<i64>,
    /// Map step -> its raw result, for the spawned steps among `creates`.
    pub sources: HashMap<String, String>,
}

impl Applied {
    fn decode(reply: Vec<redis::Value>) -> Result<Self, StoreError> {
        let mut it = reply.into_iter();
        let bad = || StoreError::Protocol("workflow: malformed reply".into());
        let state: String = redis::from_redis_value(it.next().ok_or_else(bad)?)?;
        let flat: Vec<String> = redis::from_redis_value(it.next().ok_or_else(bad)?)?;
        let cancels: Vec<String> = redis::from_redis_value(it.next().ok_or_else(bad)?)?;
        let started: Vec<String> = redis::from_redis_value(it.next().ok_or_else(bad)?)?;
        let tp: String = redis::from_redis_value(it.next().ok_or_else(bad)?)?;
        let settled: String = redis::from_redis_value(it.next().ok_or_else(bad)?)?;
        if !settled.is_empty() {
            // One call ends a workflow: counted once across every process.
            metrics::counter!("errand_workflows_ended_total", "state" => settled).increment(1);
        }
        let created_ms: Option<i64> = it.next().map(redis::from_redis_value::<i64>).transpose()?;
        let src: Vec<String> = it
            .next()
            .map(redis::from_redis_value)
            .transpose()?
            .unwrap_or_default();
        if !src.len().is_multiple_of(2) {
            return Err(bad());
        }
        let sources = src
            .chunks(2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect();
        if !flat.len().is_multiple_of(4) || !started.len().is_multiple_of(2) {
            return Err(bad());
        }
        let creates = flat
            .chunks(4)
            .map(|c| Create {
                step: c[0].clone(),
                task: c[1].clone(),
                inputs: c[2].clone(),
                spawned_from: c[3].clone(),
            })
            .collect();
        let started = started
            .chunks(2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect();
        Ok(Self {
            state,
            creates,
            cancels,
            started,
            traceparent: (!tp.is_empty()).then_some(tp),
            created_ms,
            sources,
        })
    }
}

impl TaskStore {
    /// A `workflow.lua` call of `op` on workflow `id`, in its shard's slot.
    pub(super) fn workflow_op<'a>(&self, op: &str, id: &str) -> redis::ScriptInvocation<'a> {
        let mut inv = self.invoke(&WORKFLOW, &self.layout.workflow(id));
        inv.arg(op)
            .arg(self.layout.workflow_tag(workflow_shard(id)))
            .arg(id)
            .arg(WORKFLOW_STALL.as_millis() as u64);
        inv
    }

    pub(super) async fn run_workflow_op(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<Applied, StoreError> {
        Applied::decode(self.run(inv).await?)
    }

    /// Creates workflow `wf` (checked: [`NewWorkflow::check`]) and its first steps' tasks,
    /// or answers the workflow already stored under its id. The workflow is written in one
    /// call before any task: a crash before its first steps are created leaves them to
    /// upkeep ([`WORKFLOW_STALL`]), never a workflow that waits for good.
    pub async fn submit_workflow(&self, wf: NewWorkflow) -> Result<WorkflowSubmitted, StoreError> {
        let id = wf.id.to_string();
        let next = wf.dependents();
        let mut inv = self.workflow_op("create", &id);
        inv.arg(wf.max_fan_out)
            .arg(wf.result_ttl_secs)
            .arg(wf.traceparent.as_deref().unwrap_or(""))
            .arg(wf.steps.len());
        for (i, s) in wf.steps.iter().enumerate() {
            let after: Vec<(&str, &str)> = s
                .after
                .iter()
                .map(|d| (d.step.as_str(), d.on_failure.as_str()))
                .collect();
            let next: Vec<&str> = next[i].iter().map(|&n| wf.steps[n].name.as_str()).collect();
            let dag = serde_json::json!({"after": after, "next": next, "map": s.map});
            inv.arg(&s.name)
                .arg(serde_json::to_string(&s.task).expect("a step task serializes"))
                .arg(dag.to_string())
                .arg(s.after.len());
        }
        let made = self.run_workflow_op(&inv).await?;
        let existed = made.state == "exists";
        // Left `creating` in the hash (a read shows a step whose task exists as started):
        // an apply of the step's task, or upkeep's look, marks it.
        let created = self
            .create_steps(
                &id,
                made.traceparent.as_deref(),
                &made.creates,
                &made.sources,
            )
            .await?;
        if let (false, Some(ms)) = (existed, made.created_ms) {
            // As written: no read back (a workflow of 1,000 steps is a large hash).
            return Ok(WorkflowSubmitted::Created(fresh(&wf, ms, &created)));
        }
        let record = self
            .workflow(&id)
            .await?
            .ok_or_else(|| StoreError::Protocol("workflow: gone right after its submit".into()))?;
        Ok(if existed {
            WorkflowSubmitted::Existing(record)
        } else {
            WorkflowSubmitted::Created(record)
        })
    }

    /// Creates the tasks of `creates` of workflow `wid`; returns the steps whose task exists
    /// now (created, or already there). A step that cannot be created ends `failed`: its
    /// task does not read (`invalid_step`), or its id is another task's (`id_taken`: a task
    /// submitted on its own under `<workflow>.<step>`).
    pub(super) async fn create_steps(
        &self,
        wid: &str,
        traceparent: Option<&str>,
        creates: &[Create],
        sources: &HashMap<String, String>,
    ) -> Result<Vec<String>, StoreError> {
        if creates.is_empty() {
            return Ok(Vec::new());
        }
        let mut tasks = Vec::with_capacity(creates.len());
        let mut names = Vec::with_capacity(creates.len());
        let mut refused: Vec<(String, &'static str, String)> = Vec::new();
        // Each map step's raw result parsed once, however many entries it spawned.
        let mut parsed: HashMap<&str, Option<serde_json::Value>> = HashMap::new();
        for c in creates {
            let name = &c.step;
            let mut t: StepTask = match serde_json::from_str(&c.task) {
                Ok(t) => t,
                Err(e) => {
                    refused.push((
                        name.clone(),
                        "invalid_step",
                        format!("its task does not read: {e}"),
                    ));
                    continue;
                }
            };
            if !c.spawned_from.is_empty() {
                let src = parsed.entry(c.spawned_from.as_str()).or_insert_with(|| {
                    sources
                        .get(&c.spawned_from)
                        .and_then(|raw| serde_json::from_str(raw).ok())
                });
                let i = name
                    .rsplit_once('.')
                    .and_then(|(_, i)| i.parse::<usize>().ok());
                t.payload = match (src.as_ref(), i) {
                    (Some(v), Some(i)) => v["spawn"][i]
                        .get("payload")
                        .cloned()
                        .unwrap_or_else(|| serde_json::json!({})),
                    _ => serde_json::json!({}),
                };
            }
            let Ok(id) = TaskId::parse(&step_task_id(wid, name)) else {
                refused.push((
                    name.clone(),
                    "invalid_step",
                    "its task id is not valid".into(),
                ));
                continue;
            };
            tasks.push(NewTask {
                id,
                kind: t.kind,
                queue: t.queue,
                payload: t.payload,
                max_attempts: t.max_attempts,
                timeout_secs: t.timeout_secs,
                result_ttl_secs: t.result_ttl_secs,
                run_at: None,
                callback: None,
                traceparent: traceparent.map(str::to_owned),
                unique: None,
                flow: Flow {
                    priority: t.priority,
                    concurrency_key: t.concurrency_key,
                },
                step: Some(StepOf {
                    workflow: wid.to_owned(),
                    step: name.clone(),
                    inputs: c.inputs.clone(),
                }),
            });
            names.push(name.clone());
        }
        let made = if tasks.is_empty() {
            Vec::new()
        } else {
            self.submit_many(tasks, Utc::now()).await?
        };
        let mut exist = Vec::with_capacity(names.len());
        for (n, m) in names.into_iter().zip(made) {
            match m {
                Submitted::Created(_) => exist.push(n),
                Submitted::Existing(r) | Submitted::Duplicate(r)
                    if r.workflow.as_deref() == Some(wid)
                        && r.step.as_deref() == Some(n.as_str()) =>
                {
                    exist.push(n);
                }
                Submitted::Existing(r) | Submitted::Duplicate(r) => refused.push((
                    n,
                    "id_taken",
                    format!(
                        "task `{}` is not this workflow's step (it was submitted on its own)",
                        r.id
                    ),
                )),
            }
        }
        if !refused.is_empty() {
            let mut inv = self.workflow_op("apply", wid);
            for (step, kind, message) in &refused {
                tracing::warn!(
                    workflow_id = wid,
                    step,
                    kind,
                    message,
                    "a workflow step cannot be created"
                );
                inv.arg(step)
                    .arg("failed")
                    .arg(serde_json::json!({"kind": kind, "message": message}).to_string())
                    .arg(super::workflow_ends::GONE_SEQ);
            }
            let again = self.run_workflow_op(&inv).await?;
            // What that failure readied (a step that runs on failure) is created too.
            let more =
                Box::pin(self.create_steps(wid, traceparent, &again.creates, &again.sources))
                    .await?;
            exist.extend(more);
        }
        Ok(exist)
    }

    /// Marks `steps` of workflow `wid` as started: their tasks were seen, so upkeep's look
    /// no longer creates them.
    pub(super) async fn mark_created(&self, wid: &str, steps: &[String]) -> Result<(), StoreError> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut inv = self.workflow_op("created", wid);
        for name in steps {
            inv.arg(name);
        }
        self.run_workflow_op(&inv).await.map(|_| ())
    }

    /// Workflow `id` as it stands, with the state of each started step's task (a step still
    /// `creating` whose task exists reads as started); `None` if
    /// there is none (never, or ended longer ago than its result TTL).
    pub async fn workflow(&self, id: &str) -> Result<Option<WorkflowRecord>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.layout.workflow(id))
            .query_async(&mut c)
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        let mut record = WorkflowRecord::from_hash(&h)?;
        // One pipeline per queue (a queue's records share its slot), in parallel.
        let mut by_queue: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, st) in record.steps.iter().enumerate() {
            if matches!(st.state, StepState::Started | StepState::Creating) {
                by_queue.entry(st.task.queue.clone()).or_default().push(i);
            }
        }
        let groups: Vec<(Vec<usize>, Vec<String>)> = by_queue
            .into_values()
            .map(|idx| {
                let keys = idx
                    .iter()
                    .map(|&i| {
                        let st = &record.steps[i];
                        self.layout.record(&st.task.queue, &st.task_id)
                    })
                    .collect();
                (idx, keys)
            })
            .collect();
        let states = futures::future::try_join_all(groups.iter().map(|(_, keys)| {
            let mut c = self.conn.clone();
            let mut pipe = redis::pipe();
            for k in keys {
                pipe.cmd("HGET").arg(k).arg("state");
            }
            async move {
                let got: Vec<Option<String>> = pipe.query_async(&mut c).await?;
                Ok::<_, StoreError>(got)
            }
        }))
        .await?;
        for ((idx, _), got) in groups.iter().zip(states) {
            for (&i, st) in idx.iter().zip(got) {
                let step = &mut record.steps[i];
                step.task_state = st.and_then(|s| s.parse::<TaskState>().ok());
                // Its task exists: it is under way, whatever the hash was last told.
                if step.task_state.is_some() && step.state == StepState::Creating {
                    step.state = StepState::Started;
                }
            }
        }
        Ok(Some(record))
    }

    /// Workflows newest first (by created ms, then id), after `after` (the created ms and
    /// id of the last one of the page before), at most `limit`; and where the next page
    /// starts, when there may be one (a workflow whose hash expired before upkeep dropped it
    /// from the listing is left out, but still moves the cursor on).
    pub async fn workflows(
        &self,
        after: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<(Vec<WorkflowSummary>, Option<(i64, String)>), StoreError> {
        let max = after.map_or("+inf".to_owned(), |(ms, _)| format!("({ms}"));
        let pages = futures::future::try_join_all((0..WORKFLOW_SHARDS).map(|shard| {
            let mut c = self.conn.clone();
            let key = self.layout.workflows_index(shard);
            let max = max.clone();
            async move {
                let mut pipe = redis::pipe();
                pipe.cmd("ZRANGE")
                    .arg(&key)
                    .arg(&max)
                    .arg("-inf")
                    .arg("BYSCORE")
                    .arg("REV")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .arg("WITHSCORES");
                // The cursor's own ms: those after it by id (a page may end inside one ms).
                if let Some((ms, _)) = after {
                    pipe.cmd("ZRANGE")
                        .arg(&key)
                        .arg(ms)
                        .arg(ms)
                        .arg("BYSCORE")
                        .arg("WITHSCORES");
                }
                let mut got: Vec<Vec<(String, f64)>> = pipe.query_async(&mut c).await?;
                let same = if got.len() > 1 {
                    got.pop().unwrap_or_default()
                } else {
                    Vec::new()
                };
                let mut ids = got.pop().unwrap_or_default();
                if let Some((_, id)) = after {
                    ids.extend(same.into_iter().filter(|(w, _)| w.as_str() < id));
                }
                Ok::<_, StoreError>(ids)
            }
        }))
        .await?;
        let mut all: Vec<(String, f64)> = pages.into_iter().flatten().collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        all.truncate(limit);
        let next = (all.len() == limit)
            .then(|| all.last().map(|(id, ms)| (*ms as i64, id.clone())))
            .flatten();
        let rows = futures::future::try_join_all(all.iter().map(|(id, _)| {
            let mut c = self.conn.clone();
            let key = self.layout.workflow(id);
            async move {
                let f: [Option<String>; 6] = redis::cmd("HMGET")
                    .arg(key)
                    .arg(&["id", "state", "created_ms", "ended_ms", "n", "ended"])
                    .query_async(&mut c)
                    .await?;
                Ok::<_, StoreError>(WorkflowSummary::from_fields(&f))
            }
        }))
        .await?;
        Ok((rows.into_iter().flatten().collect(), next))
    }

    /// Cancels workflow `id`: every step that has not started is cancelled, and every task
    /// under way is cancelled as a task is (a running one by request to its worker). The
    /// workflow ends `cancelled` once they have. `None`: no such workflow.
    pub async fn cancel_workflow(&self, id: &str) -> Result<Option<WorkflowState>, StoreError> {
        let done = self
            .run_workflow_op(&self.workflow_op("cancel", id))
            .await?;
        if done.state == "gone" {
            return Ok(None);
        }
        self.cancel_tasks(&done.cancels).await?;
        Ok(WorkflowState::parse(&done.state))
    }

    /// Cancels each of `ids` (a task already ended or gone is left as it is).
    pub(super) async fn cancel_tasks(&self, ids: &[String]) -> Result<(), StoreError> {
        let now = Utc::now();
        let ids: Vec<TaskId> = ids.iter().filter_map(|id| TaskId::parse(id).ok()).collect();
        let cancels = futures::stream::iter(ids)
            .map(|id| {
                let s = self.clone();
                async move { s.cancel(&id, now).await.map(|_| ()) }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        cancels.into_iter().collect()
    }
}

/// Workflow `wf` as its create wrote it at `ms`: the steps in `created` started (their tasks
/// queued just now), the other first steps still being created, the rest waiting.
fn fresh(wf: &NewWorkflow, ms: i64, created: &[String]) -> WorkflowRecord {
    let created: std::collections::HashSet<&str> = created.iter().map(String::as_str).collect();
    WorkflowRecord {
        id: wf.id.to_string(),
        state: WorkflowState::Running,
        created_at: chrono::DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_else(Utc::now),
        ended_at: None,
        cancel_requested: false,
        steps: wf
            .steps
            .iter()
            .map(|s| {
                let (state, task_state) = if created.contains(s.name.as_str()) {
                    (StepState::Started, Some(TaskState::Queued))
                } else if s.after.is_empty() {
                    (StepState::Creating, None)
                } else {
                    (StepState::Waiting, None)
                };
                StepRecord {
                    name: s.name.clone(),
                    task_id: step_task_id(wf.id.as_str(), &s.name),
                    state,
                    task: s.task.clone(),
                    after: s.after.clone(),
                    map: s.map,
                    parent: None,
                    end: None,
                    spawned: 0,
                    skipped: false,
                    task_state,
                }
            })
            .collect(),
    }
}
