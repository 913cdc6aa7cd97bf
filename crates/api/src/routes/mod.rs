//! HTTP routes, one module per resource.

pub mod health;
pub mod kinds;
pub mod tasks;
