//! One module per task kind.

pub mod noop;
pub mod sleep;
