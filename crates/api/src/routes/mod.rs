//! HTTP routes, one module per resource.

pub mod batch;
pub mod control;
pub mod health;
pub mod kinds;
pub mod query;
pub mod queues;
pub mod schedules;
pub mod tasks;
pub mod tutorial;
pub mod watch;
