//! One module per task kind.

pub mod chaos;
pub mod noop;
pub mod sleep;
