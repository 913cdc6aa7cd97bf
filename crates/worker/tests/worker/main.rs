//! The worker's integration tests: the real runner in this process against a real
//! redis-server (see `errand_worker::drain`). One module per area.

mod drain;
mod shutdown;
mod support;
