//! The Redis task store: errand's records, their guarded transitions, and the queues'
//! ready lists the workers fetch from. Every transition is one Lua script (one round trip,
//! atomic) that checks the state it leaves.
//!
//! # Layout
//! One file per operation, each with its script in `lua/` (all share `lua/prelude.lua`):
//! - [`submit`](TaskStore::submit): create records and enqueue them (`submit.lua`).
//! - [`fetch`](TaskStore::fetch): take ready tasks of a queue and claim them for one attempt
//!   each (`fetch.lua`); [`release`](TaskStore::release) gives unrun claims back.
//! - [`progress`](TaskStore::progress_many) and [`finish`](TaskStore::finish_many): what an
//!   attempt reports, fenced by its claim token.
//! - [`renew_leases`](TaskStore::renew_leases): the lease of every held claim, and which
//!   claims were lost.
//! - [`cancel`](TaskStore::cancel), [`retry`](TaskStore::retry): the API's controls.
//! - [`recover`](TaskStore::recover): due delayed tasks, and lapsed leases, back to queued.
//! - [`expire_indexes`](TaskStore::expire_indexes): expired ids out of the indexes, their
//!   tombstones (`tombstones`, kept as [`Retention`] says), and a queue that holds nothing
//!   out of the queue set.
//! - [`get`](TaskStore::get), [`list`](TaskStore::list), [`queues`](TaskStore::queues):
//!   reads.
//! - [`heartbeat`](TaskStore::heartbeat), [`workers`](TaskStore::workers): the worker registry.
//! - [`register_kinds`](TaskStore::register_kinds), [`kind_registry`](TaskStore::kind_registry):
//!   the kind registry, and [`Registry::current`], which definition validates a kind.
//! - [`migrate`](TaskStore::migrate): the previous layouts (untagged keys; before that,
//!   apalis-redis's) converted to this one.
//! - `locate`: which queue (so which hash slot) an id's task lives in.
//! - [`pause_queue`](TaskStore::pause_queue), [`resume_queue`](TaskStore::resume_queue):
//!   the dashboard's queue brake (`pause.lua`; `fetch.lua` checks it);
//!   [`history`](TaskStore::history): per-minute finish counts (`stats.lua`, written by
//!   `finish.lua`).
//! - [`claim_webhooks`](TaskStore::claim_webhooks), [`settle_webhook`](TaskStore::settle_webhook):
//!   the webhook outbox, which every terminal transition writes (`webhooks.rs`).
//! - [`submit_workflow`](TaskStore::submit_workflow), [`workflow`](TaskStore::workflow),
//!   [`cancel_workflow`](TaskStore::cancel_workflow) (`workflows`, `workflow.lua`): workflows,
//!   whose steps are tasks; [`apply_workflow_ends`](TaskStore::apply_workflow_ends) and
//!   [`sweep_workflows`](TaskStore::sweep_workflows) (`workflow_ends`, `wf_outbox.lua`): how
//!   a step's end, written to its queue's outbox by the transition, reaches its workflow.
//! - `schedules`: periodic schedules. `layout`: every key name. `script`: how scripts are
//!   called and their replies decoded. `connect` (one Redis or a cluster), `error`,
//!   `pubsub`.

#[cfg(test)]
mod bounds_tests;
mod bulk;
mod cancel;
mod connect;
mod error;
mod expire;
mod fetch;
mod finish;
#[cfg(test)]
mod flow_tests;
mod kinds;
mod layout;
mod lease;
mod limits;
mod list;
mod locate;
mod migrate;
mod pause;
mod progress;
mod pubsub;
mod queues;
mod read;
mod recover;
mod retention;
mod retry;
mod schedules;
mod script;
mod stats;
mod submit;
mod tombstones;
#[cfg(test)]
mod unique_tests;
mod webhooks;
mod workers;
mod workflow_ends;
#[cfg(test)]
mod workflow_tests;
mod workflows;

pub use bulk::{BulkAction, BulkFilter, BulkJob};
pub use cancel::Cancel;
pub use connect::{Conn, Connector, connect, connector};
pub use error::{StoreError, Unavailability};
pub use fetch::{Claimed, Fetched, MAX_FETCH};
pub use finish::{AttemptEnd, Outcome};
pub use kinds::{CurrentKind, KindDefinition, RegisteredKind, Registry, WorkerKind};
pub use layout::{LAYOUT_VERSION, Layout, WORKFLOW_SHARDS};
pub use lease::{Held, Renewed};
pub use limits::{HeldBack, QueueLimits, Rate};
pub use list::{Cursor, ListPage, ListQuery};
pub use progress::ProgressReport;
pub use pubsub::subscription;
pub use queues::QueueStats;
pub use recover::Recover;
pub use retention::Retention;
pub use retry::Retry;
pub use schedules::{FireReport, ScheduleCreated, SchedulePage};
pub use stats::{Bucket, FailedAttempt, History};
pub use submit::{Flow, NewTask, StepOf, Submitted, Unique};
pub use webhooks::{ClaimedWebhook, Settle};
pub use workers::{WorkerInfo, WorkerQueue};
pub use workflows::{WORKFLOW_STALL, WorkflowSubmitted};

/// Every read and write of errand's state: one cheap-to-clone handle over the connection
/// and the key layout, shared by the api and the workers.
#[derive(Clone, Debug)]
pub struct TaskStore {
    conn: Conn,
    layout: Layout,
    retention: Retention,
}

impl TaskStore {
    /// A store over `conn` with keys under `layout`'s prefix, keeping tombstones and webhook
    /// deliveries for the default times ([`Retention::default`]).
    pub fn new(conn: Conn, layout: Layout) -> Self {
        Self {
            conn,
            layout,
            retention: Retention::default(),
        }
    }

    /// The same store keeping tombstones and webhook deliveries as `retention` says
    /// ([`Retention::from_settings`]).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// The key names this store uses (the migration and tests need them).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A clone of the shared connection.
    pub fn connection(&self) -> Conn {
        self.conn.clone()
    }

    /// True on a Redis Cluster: a call may touch one hash slot only, so what a single Redis
    /// does in one script call takes one call per slot.
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// One round trip: the readiness probe's check that Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }
}
