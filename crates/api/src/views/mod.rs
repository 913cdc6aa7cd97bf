//! The API's edge with the store: every JSON body built from a store type (errand-core) is
//! an errand-wire type made here, and every request value the store keeps is made from one
//! here, so the store's types can change without changing the API. The wire types carry the
//! OpenAPI schemas; these conversions are the only code that knows both sides.
//!
//! Two traits rather than `From`: both sides are other crates' types, which Rust's orphan
//! rule keeps `From` from joining here.

mod http_worker;
mod kind;
mod queue;
mod schedule;
mod task;
mod worker;
mod workflow;

/// A store value as the API serves it.
pub(crate) trait IntoWire {
    /// The wire type it becomes.
    type Wire;
    /// Converts; by value where the caller is done with it, so large parts move.
    fn into_wire(self) -> Self::Wire;
}

/// A wire value as the store keeps it.
pub(crate) trait IntoStore {
    /// The store type it becomes.
    type Store;
    /// Converts.
    fn into_store(self) -> Self::Store;
}
