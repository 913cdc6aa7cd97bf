//! The bounds a submitted task's settings are held to, in one place: the API validates
//! against these, and its OpenAPI documents state the same numbers (utoipa takes only
//! literals there, so a test in errand-api compares the two).

use std::ops::RangeInclusive;

/// Attempts before a task is `failed`.
pub const MAX_ATTEMPTS: RangeInclusive<u32> = 1..=100;
/// A per-attempt time limit, in seconds (up to a week).
pub const TIMEOUT_SECS: RangeInclusive<u64> = 1..=604_800;
/// How far ahead a task may be delayed, in seconds (up to a year); `run_at` is held to
/// the same horizon.
pub const DELAY_SECS: RangeInclusive<u64> = 0..=31_536_000;
/// How long a terminal record stays readable, in seconds (up to 30 days).
pub const RESULT_TTL_SECS: RangeInclusive<u64> = 1..=2_592_000;
/// A task's priority: higher first (docs/flow-control.md); 5 when not given.
pub const PRIORITY: RangeInclusive<u8> = 1..=9;
/// How long a unique key is held from the submit that took it, in seconds (up to 30 days).
pub const UNIQUE_FOR_SECS: RangeInclusive<u64> = 1..=2_592_000;
