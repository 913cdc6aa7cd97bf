//! errand-core's store against a real redis-server: the races and fences its scripts
//! promise, one module per concern (one test binary for the crate).

mod fences;
mod helpers;
mod interleave;
mod schedules;
mod webhooks;
