//! Fault injection against the real binaries and a real Redis: errand's promises under
//! stress. A task accepted with 2xx runs at least once and its outcome is recorded;
//! processes recover by themselves. One module per kind of fault; the api's bad-input table
//! is in crates/api/tests/api/bad_input.rs.
//!
//! The heavy scenarios are `#[ignore]`d from the default run; `just chaos` runs the whole
//! binary one test at a time (timings are figures here, and 2 cores are easily saturated).
//! Every test prints its figures on one `chaos[...]` line; docs/reliability.md quotes them.

mod connections;
mod helpers;
mod partition;
mod races;
mod redis;
mod soak;
mod workers;
mod workflows;
