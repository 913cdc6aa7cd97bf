//! The API's own view of what it serves: every JSON body built from a store type goes
//! through one of these, so the store's types (errand-core) can change without changing
//! the API, and the OpenAPI schemas are written here, beside the JSON they describe.
//!
//! Each view serializes exactly as the store type did (same field names, order and
//! nullability) and keeps its OpenAPI component name (`#[schema(as = ...)]`), which the
//! contract tests and the document snapshots hold.

mod kind;
mod schedule;
mod task;
mod worker;

pub(crate) use kind::KindView;
pub(crate) use schedule::{MisfireView, ScheduleIdView, ScheduleView};
pub(crate) use task::{
    CallbackView, ProgressView, TaskErrorView, TaskIdView, TaskStateView, TaskView,
    WebhookEventView, WebhookStateView, WebhookStatusView,
};
pub(crate) use worker::{WorkerKindView, WorkerQueueView, WorkerView};
