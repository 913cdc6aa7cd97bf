//! HTTP routes, one module per resource.

pub(crate) mod batch;
pub(crate) mod bulk;
pub(crate) mod control;
pub(crate) mod docs;
pub(crate) mod health;
pub(crate) mod kinds;
pub(crate) mod limits;
pub(crate) mod lookup;
pub(crate) mod query;
pub(crate) mod queues;
pub(crate) mod schedules;
pub(crate) mod tasks;
pub(crate) mod tutorial;
pub(crate) mod watch;
pub(crate) mod worker;
pub(crate) mod workflows;
