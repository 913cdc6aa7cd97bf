//! The worker's behaviour, in one test binary: end to end with the real errand-api and
//! errand-worker binaries (through errand-testkit) against a private redis-server, and in
//! process with the real runner (`errand_worker::drain`). One module per area.

mod control;
mod drain;
mod fences;
mod guards;
mod helpers;
mod kinds;
mod lifecycle;
mod schedules;
mod shutdown;
mod stop_matrix;
mod webhooks;
