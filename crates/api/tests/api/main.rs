//! API integration tests: the real `Application` on port 0 against a real redis-server.

mod access;
mod bad_input;
mod bulk;
mod contract;
mod helpers;
mod limits;
mod listing;
mod metrics;
mod not_now;
mod openapi;
mod queues;
mod redis_down;
mod redoc;
mod registry;
mod schedules;
mod submit;
mod tutorial;
mod ui;
mod worker_protocol;
mod workflows;
