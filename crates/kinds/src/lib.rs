//! errand-kinds: what a task does. A kind is a [`TaskKind`] impl: a payload type, an output
//! type, and `run`. One module per built-in kind under [`builtin`]; your own kinds live in
//! your own crate and run in your own worker binary (`errand_worker::Worker::builder`,
//! docs/writing-kinds.md).
//!
//! A [`Catalog`] holds the kinds one process knows. A worker registers its catalog's
//! [definitions](Catalog::definitions) in Redis (name, aliases, payload and result JSON
//! Schema); the api validates submits against the registered schemas, so it runs any kind
//! without being rebuilt. The built-in kinds' typed checks (a URL's destination policy,
//! header syntax: what a JSON Schema cannot say) run in the api as well.
//!
//! # Layout
//! - `catalog`: [`Catalog`], kinds erased to JSON in and JSON out, and their definitions.
//! - `context`: [`TaskContext`], what a running task sees; [`Failure`], how it fails.
//! - `resolver`: [`PolicyResolver`], name resolution behind a destination policy (the
//!   worker's webhook client uses it too).
//! - `services`: what the built-in kinds share in a process (HTTP client, mail transport).
//! - [`builtin`]: errand's own kinds, one per file.

pub mod builtin;
mod catalog;
mod context;
mod resolver;
mod services;

pub use catalog::{Catalog, Invalid, KindInfo, Limits, is_kind_name};
pub use context::{Failure, FailureKind, TaskContext};
pub use resolver::PolicyResolver;

use std::future::Future;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use utoipa::ToSchema;

/// A kind of task errand can run. Implementations are typed; the catalog erases them.
pub trait TaskKind: Send + Sync + 'static {
    /// The payload, deserialized strictly (unknown fields are rejected at submit time).
    type Payload: DeserializeOwned + ToSchema + Send + 'static;
    /// What a successful run returns, stored as the record's `result`. A type rather than
    /// free JSON so that the OpenAPI document's result schema for the kind is the shape the
    /// worker writes, by construction.
    type Output: Serialize + ToSchema + Send + 'static;

    /// Canonical name, used in submissions and stored on the record.
    const NAME: &'static str;
    /// Other names accepted at submit time (stored as the canonical name).
    const ALIASES: &'static [&'static str] = &[];
    /// One line for `GET /v1/kinds` and the docs.
    const SUMMARY: &'static str;
    /// Whether running it twice has the same effect as once. Delivery is at least once, so
    /// a non-idempotent kind may see a repeat after a worker dies mid-task.
    const IDEMPOTENT: bool;

    /// An example payload for the docs.
    fn example() -> Value;

    /// Checks beyond the payload's types (ranges, limits). The error names the field. The
    /// worker runs it before every attempt (a payload that fails ends the task `failed`
    /// with `invalid_payload`); the api runs it at submit only for errand's built-in
    /// kinds, and otherwise validates by the JSON Schema alone, so state the bounds a
    /// client should meet in the schema too ([`TaskKind::document`]).
    fn check(_payload: &Self::Payload, _limits: &Limits) -> Result<(), Invalid> {
        Ok(())
    }

    /// Writes the bounds [`TaskKind::check`] takes from `limits` into the payload's JSON
    /// Schema (a `maximum` from a `tasks.*` setting, say), so that `GET /v1/kinds` and the
    /// OpenAPI document state exactly what this server accepts, not only the type.
    fn document(_schema: &mut Value, _limits: &Limits) {}

    /// Runs one attempt. Must honour `ctx.cancelled()` at its await points; CPU-bound work
    /// belongs on `tokio::task::spawn_blocking`, never on the async executor.
    fn run(
        ctx: TaskContext,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<Self::Output, Failure>> + Send + 'static;
}
