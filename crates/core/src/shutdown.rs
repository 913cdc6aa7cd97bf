//! One owner for a process's stop: both binaries' background loops are spawned here, and
//! stopped and joined here, in one order.
//!
//! # Phases
//! [`Shutdown::run`] goes through them in this order once [`Shutdown::requested`] (a
//! SIGINT/SIGTERM from [`Shutdown::listen_for_signals`], or [`Shutdown::trigger`]):
//! 1. **Stop taking work**: [`Shutdown::work`] is cancelled; loops that take new work
//!    (fetching, firing schedules, claiming webhooks) stop taking it.
//! 2. **Grace**: the work already taken (attempts in flight) has up to the grace period to
//!    finish.
//! 3. **Abandon**: if it did not, [`Shutdown::abandon`] is cancelled; what still runs is left
//!    to its lease (another process takes it over).
//! 4. **Join**: the work loops are joined, then [`Shutdown::background`] is cancelled and
//!    the background loops (upkeep, leases, subscriptions) are joined, all within the join
//!    deadline.
//!
//! # Invariant
//! Every background loop is spawned on one of the two trackers ([`Shutdown::spawn_work`],
//! [`Shutdown::spawn_background`]) and so is joined before [`Shutdown::run`] returns:
//! nothing is left detached to be cut off mid-write when the runtime drops. A loop still
//! running at the deadline is reported ([`Stopped::joined`] false), not waited for.

use std::{future::Future, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// A process's stop, in phases (see the module docs).
#[derive(Debug, Clone)]
pub struct Shutdown {
    requested: CancellationToken,
    work: CancellationToken,
    abandon: CancellationToken,
    background: CancellationToken,
    work_loops: TaskTracker,
    background_loops: TaskTracker,
    join_deadline: Duration,
}

/// How a [`Shutdown::run`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// The grace period ran out and running work was abandoned.
    pub abandoned: bool,
    /// Every loop ended within the join deadline.
    pub joined: bool,
}

impl Shutdown {
    /// A shutdown whose loops get `join_deadline` to end once asked to.
    pub fn new(join_deadline: Duration) -> Self {
        Self {
            requested: CancellationToken::new(),
            work: CancellationToken::new(),
            abandon: CancellationToken::new(),
            background: CancellationToken::new(),
            work_loops: TaskTracker::new(),
            background_loops: TaskTracker::new(),
            join_deadline,
        }
    }

    /// Requests the stop on the first SIGINT or SIGTERM. Call once: the listener is itself
    /// a background loop (it ends with the process's stop).
    pub fn listen_for_signals(&self) {
        let requested = self.requested.clone();
        self.spawn_background(async move {
            tokio::select! {
                _ = signal() => requested.cancel(),
                _ = requested.cancelled() => {}
            }
        });
    }

    /// Requests the stop (a loop that cannot go on, a test, an idle drain).
    pub fn trigger(&self) {
        self.requested.cancel();
    }

    /// Resolves once the stop was requested.
    pub async fn requested(&self) {
        self.requested.cancelled().await;
    }

    /// Cancelled at phase 1: loops that take new work stop taking it.
    pub fn work(&self) -> CancellationToken {
        self.work.clone()
    }

    /// Cancelled at phase 3, if the grace period ran out: running work gives up.
    pub fn abandon(&self) -> CancellationToken {
        self.abandon.clone()
    }

    /// Cancelled at phase 4, once the work loops ended: the loops that serve the others
    /// (upkeep, lease renewal, subscriptions) stop.
    pub fn background(&self) -> CancellationToken {
        self.background.clone()
    }

    /// Spawns a loop that stops on [`Shutdown::work`]; it is joined in phase 4, before the
    /// background loops are stopped (so they still serve it while it winds down).
    pub fn spawn_work<F>(&self, f: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.work_loops.spawn(f)
    }

    /// Spawns a loop that stops on [`Shutdown::background`]; joined last.
    pub fn spawn_background<F>(&self, f: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.background_loops.spawn(f)
    }

    /// Joins an OS thread that stops on [`Shutdown::background`] with the background loops.
    pub fn join_thread_in_background(&self, thread: std::thread::JoinHandle<()>) {
        self.background_loops.spawn_blocking(move || {
            if thread.join().is_err() {
                tracing::error!("a background thread panicked");
            }
        });
    }

    /// Runs the phases (see the module docs) once the stop was requested. `drained`
    /// resolves when the work taken before phase 1 is done (it may first announce the stop);
    /// phase 2 waits for it up to `grace`. `on_abandon` runs just before phase 3 cancels
    /// [`Shutdown::abandon`], when it does.
    pub async fn run(
        self,
        grace: Duration,
        drained: impl Future<Output = ()>,
        on_abandon: impl FnOnce(),
    ) -> Stopped {
        self.requested().await;
        // 1. Stop taking work.
        self.work.cancel();
        // 2. Grace.
        let abandoned = tokio::time::timeout(grace, drained).await.is_err();
        // 3. Abandon.
        if abandoned {
            on_abandon();
            self.abandon.cancel();
        }
        // 4. Join: the work loops, then the background loops.
        let joined = tokio::time::timeout(self.join_deadline, async {
            self.work_loops.close();
            self.work_loops.wait().await;
            self.background.cancel();
            self.background_loops.close();
            self.background_loops.wait().await;
        })
        .await
        .is_ok();
        if !joined {
            self.background.cancel();
            tracing::warn!(
                work_loops = self.work_loops.len(),
                background_loops = self.background_loops.len(),
                deadline_secs = self.join_deadline.as_secs(),
                "loops still running at the shutdown deadline; not waiting for them"
            );
        }
        Stopped { abandoned, joined }
    }
}

/// The first SIGINT or SIGTERM.
async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; SIGINT only");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    #[tokio::test]
    async fn phases_run_in_order_and_every_loop_is_joined() {
        let s = Shutdown::new(Duration::from_secs(5));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (work, seen_w) = (s.work(), seen.clone());
        s.spawn_work(async move {
            work.cancelled().await;
            // Winding down takes a while; the background loop must still be up meanwhile.
            tokio::time::sleep(Duration::from_millis(50)).await;
            seen_w.lock().unwrap().push("work ended");
        });
        let (bg, seen_b) = (s.background(), seen.clone());
        s.spawn_background(async move {
            bg.cancelled().await;
            seen_b.lock().unwrap().push("background ended");
        });
        s.trigger();
        let stopped = s.clone().run(Duration::from_secs(1), async {}, || {}).await;
        assert_eq!(
            stopped,
            Stopped {
                abandoned: false,
                joined: true
            }
        );
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["work ended", "background ended"]
        );
        assert!(
            !s.abandon().is_cancelled(),
            "drained in time: nothing abandoned"
        );
    }

    #[tokio::test]
    async fn grace_running_out_abandons_then_joins() {
        let s = Shutdown::new(Duration::from_secs(5));
        let abandon = s.abandon();
        s.spawn_work(async move { abandon.cancelled().await });
        s.trigger();
        let told = Arc::new(AtomicUsize::new(0));
        let t = told.clone();
        let stopped = s
            .clone()
            .run(
                Duration::from_millis(50),
                std::future::pending(),
                move || {
                    t.fetch_add(1, Ordering::SeqCst);
                },
            )
            .await;
        assert!(stopped.abandoned && stopped.joined, "{stopped:?}");
        assert_eq!(told.load(Ordering::SeqCst), 1);
        assert!(s.abandon().is_cancelled());
    }

    #[tokio::test]
    async fn a_loop_that_never_ends_is_reported_at_the_deadline() {
        let s = Shutdown::new(Duration::from_millis(50));
        s.spawn_background(std::future::pending::<()>());
        s.trigger();
        let stopped = s.run(Duration::from_secs(1), async {}, || {}).await;
        assert_eq!(
            stopped,
            Stopped {
                abandoned: false,
                joined: false
            }
        );
    }
}
