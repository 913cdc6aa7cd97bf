//! The worker's behaviour end to end: the real errand-api and errand-worker binaries (run
//! through errand-testkit) against a private redis-server. One binary, one module per area.

mod control;
mod guards;
mod helpers;
mod kinds;
mod lifecycle;
mod schedules;
mod webhooks;
