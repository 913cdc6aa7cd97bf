//! How many of a queue's slots are taken: what a fetch may ask for is the rest, so no
//! claimed task waits in a buffer while its lease runs.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

/// The slots of one queue's apalis worker: `concurrency` of them, `taken` by tasks handed to
/// apalis and not yet done.
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    concurrency: usize,
    taken: Arc<AtomicUsize>,
}

impl Slots {
    pub(crate) fn new(concurrency: usize) -> Self {
        Self {
            concurrency: concurrency.max(1),
            taken: Arc::default(),
        }
    }

    /// Slots not taken (at least 1: apalis asks for a task only when one is free).
    pub(crate) fn free(&self) -> usize {
        self.concurrency
            .saturating_sub(self.taken.load(Ordering::Acquire))
            .max(1)
    }

    /// Takes a slot for a task handed to apalis; the slot is free again when the guard drops.
    pub(crate) fn take(&self) -> SlotGuard {
        self.taken.fetch_add(1, Ordering::AcqRel);
        SlotGuard(self.taken.clone())
    }
}

/// One taken slot; travels with its task into the handler and is dropped when the task's
/// work has ended.
#[derive(Debug)]
pub(crate) struct SlotGuard(Arc<AtomicUsize>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_slots_follow_the_guards() {
        let s = Slots::new(3);
        assert_eq!(s.free(), 3);
        let a = s.take();
        let b = s.take();
        assert_eq!(s.free(), 1);
        drop(a);
        assert_eq!(s.free(), 2);
        let _c = s.take();
        let _d = s.take();
        assert_eq!(s.free(), 1, "never asks for less than one");
        drop(b);
    }
}
