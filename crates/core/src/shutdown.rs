//! One owner for a process's stop: both binaries' background loops are spawned here, and
//! stopped and joined here, in one order.
//!
//! # Phases
//! [`Shutdown::run`] goes through them in this order once [`Shutdown::requested`] (a
//! SIGINT/SIGTERM from [`Shutdown::listen_for_signals`], or [`Shutdown::trigger`]):
//! 1. **Stop taking work**: [`Shutdown::work`] is cancelled; loops that take new work
//!    (fetching, firing schedules, claiming webhooks) stop taking it, and waits on behalf of
//!    a client (long-polls, event streams) end.
//! 2. **Grace**: the work already taken (attempts in flight, requests in flight) has up to
//!    the grace period to finish.
//! 3. **Abandon**: if it did not, [`Shutdown::abandon`] is cancelled; what still runs is left
//!    to its lease (another process takes it over).
//! 4. **Join**: the work loops are joined, then [`Shutdown::background`] is cancelled and
//!    the background loops (upkeep, leases, subscriptions) are joined, all within the join
//!    deadline.
//!
//! A second signal (or [`Shutdown::force`]) while these run **stops at once**: the grace
//! ends there (phase 3 follows), the background loops are told to stop with the work loops,
//! and the join waits at most [`FORCED_JOIN`] more.
//!
//! # Invariant
//! Every background loop is spawned on one of the two trackers ([`Shutdown::spawn_work`],
//! [`Shutdown::spawn_background`]) and so is joined before [`Shutdown::run`] returns:
//! nothing is left detached to be cut off mid-write when the runtime drops. A loop still
//! running at the deadline is reported ([`Stopped::joined`] false), not waited for. The
//! signal listener is joined last, by [`Shutdown::run`] itself.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::task::JoinHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// How long the loops still get once a stop was forced (a second signal): enough for a
/// cancelled attempt to be let go and a last Redis call to be dropped, not for a drain.
pub const FORCED_JOIN: Duration = Duration::from_secs(1);

/// A process's stop, in phases (see the module docs).
#[derive(Debug, Clone)]
pub struct Shutdown {
    requested: CancellationToken,
    forced: CancellationToken,
    work: CancellationToken,
    abandon: CancellationToken,
    background: CancellationToken,
    work_loops: TaskTracker,
    background_loops: TaskTracker,
    join_deadline: Duration,
    /// The signal listener, once started: joined at the end of [`Shutdown::run`], since it
    /// must hear a second signal through every phase.
    signals: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// How a [`Shutdown::run`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// The grace period ran out (or the stop was forced) and running work was abandoned.
    pub abandoned: bool,
    /// Every loop ended within the join deadline.
    pub joined: bool,
    /// A second signal (or [`Shutdown::force`]) cut the stop short.
    pub forced: bool,
}

/// Why phase 3 abandons what still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// The grace period ran out.
    GraceOver,
    /// A second signal asked for the stop at once.
    Forced,
}

impl Shutdown {
    /// A shutdown whose loops get `join_deadline` to end once asked to.
    pub fn new(join_deadline: Duration) -> Self {
        Self {
            requested: CancellationToken::new(),
            forced: CancellationToken::new(),
            work: CancellationToken::new(),
            abandon: CancellationToken::new(),
            background: CancellationToken::new(),
            work_loops: TaskTracker::new(),
            background_loops: TaskTracker::new(),
            join_deadline,
            signals: Arc::default(),
        }
    }

    /// Requests the stop on the first SIGINT or SIGTERM, and forces it on the next one
    /// (one received after the stop was requested some other way forces it too). Call once,
    /// from the process's runtime; [`Shutdown::run`] joins the listener last.
    pub fn listen_for_signals(&self) {
        let (requested, forced) = (self.requested.clone(), self.forced.clone());
        let listener = tokio::spawn(async move {
            let mut signals = Signals::new();
            while let Some(name) = signals.next().await {
                if !requested.is_cancelled() {
                    tracing::info!(
                        signal = name,
                        "stop requested; a second SIGTERM or SIGINT stops at once"
                    );
                    requested.cancel();
                } else {
                    tracing::warn!(
                        signal = name,
                        "second signal: stopping at once; tasks still running are left to their leases"
                    );
                    forced.cancel();
                    return;
                }
            }
        });
        let mut slot = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.replace(listener) {
            old.abort();
        }
    }

    /// Requests the stop (a loop that cannot go on, a test, an idle drain).
    pub fn trigger(&self) {
        self.requested.cancel();
    }

    /// Requests the stop and cuts it short, as a second signal does.
    pub fn force(&self) {
        self.requested.cancel();
        self.forced.cancel();
    }

    /// Resolves once the stop was requested.
    pub async fn requested(&self) {
        self.requested.cancelled().await;
    }

    /// Whether the stop was requested.
    pub fn is_requested(&self) -> bool {
        self.requested.is_cancelled()
    }

    /// Cancelled at phase 1: loops that take new work stop taking it, and waits on behalf
    /// of a client end.
    pub fn work(&self) -> CancellationToken {
        self.work.clone()
    }

    /// Cancelled at phase 3, if the grace period ran out or the stop was forced: running
    /// work gives up.
    pub fn abandon(&self) -> CancellationToken {
        self.abandon.clone()
    }

    /// Cancelled at phase 4, once the work loops ended (at once if the stop was forced):
    /// the loops that serve the others (upkeep, lease renewal, subscriptions) stop.
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
    /// phase 2 waits for it up to `grace`, or until the stop is forced. `on_abandon` runs
    /// just before phase 3 cancels [`Shutdown::abandon`], when it does.
    pub async fn run(
        self,
        grace: Duration,
        drained: impl Future<Output = ()>,
        on_abandon: impl FnOnce(Abandoned),
    ) -> Stopped {
        self.requested().await;
        // 1. Stop taking work.
        self.work.cancel();
        // 2. Grace.
        let why = tokio::select! {
            r = tokio::time::timeout(grace, drained) => r.err().map(|_| Abandoned::GraceOver),
            () = self.forced.cancelled() => Some(Abandoned::Forced),
        };
        // 3. Abandon.
        if let Some(why) = why {
            on_abandon(why);
            self.abandon.cancel();
        }
        // 4. Join: the work loops, then the background loops; a forced stop stops both at
        // once and waits for them briefly.
        let join = async {
            self.work_loops.close();
            self.work_loops.wait().await;
            self.background.cancel();
            self.background_loops.close();
            self.background_loops.wait().await;
        };
        let forced = async {
            self.forced.cancelled().await;
            self.abandon.cancel();
            self.background.cancel();
            tokio::time::sleep(FORCED_JOIN).await;
        };
        let joined = tokio::select! {
            r = tokio::time::timeout(self.join_deadline, join) => r.is_ok(),
            () = forced => false,
        };
        if !joined {
            self.background.cancel();
            tracing::warn!(
                work_loops = self.work_loops.len(),
                background_loops = self.background_loops.len(),
                deadline_ms = if self.forced.is_cancelled() {
                    FORCED_JOIN
                } else {
                    self.join_deadline
                }
                .as_millis() as u64,
                "loops still running at the shutdown deadline; not waiting for them"
            );
        }
        let listener = self
            .signals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(listener) = listener {
            listener.abort();
            let _ = listener.await;
        }
        Stopped {
            abandoned: why.is_some(),
            joined,
            forced: self.forced.is_cancelled(),
        }
    }
}

/// SIGTERM and SIGINT, each time one arrives.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for {name}");
                    None
                }
            };
            Self {
                term: listen(SignalKind::terminate(), "SIGTERM"),
                int: listen(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The next signal's name; `None` once none can arrive any more.
    async fn next(&mut self) -> Option<&'static str> {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
                match s {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            }
            if self.term.is_none() && self.int.is_none() {
                return None;
            }
            tokio::select! {
                Some(()) = recv(&mut self.term) => Some("SIGTERM"),
                Some(()) = recv(&mut self.int) => Some("SIGINT"),
                else => None,
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.ok().map(|()| "SIGINT")
        }
    }
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
        let seen = Arc::new(Mutex::new(Vec::new()));
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
        let stopped = s
            .clone()
            .run(Duration::from_secs(1), async {}, |_| {})
            .await;
        assert_eq!(
            stopped,
            Stopped {
                abandoned: false,
                joined: true,
                forced: false,
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
                move |why| {
                    assert_eq!(why, Abandoned::GraceOver);
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
        let stopped = s.run(Duration::from_secs(1), async {}, |_| {}).await;
        assert_eq!(
            stopped,
            Stopped {
                abandoned: false,
                joined: false,
                forced: false,
            }
        );
    }

    #[tokio::test]
    async fn a_forced_stop_ends_the_grace_and_the_join_at_once() {
        let s = Shutdown::new(Duration::from_secs(60));
        // A work loop that never ends, and a background loop that ends when told.
        s.spawn_work(std::future::pending::<()>());
        let bg = s.background();
        s.spawn_background(async move { bg.cancelled().await });
        s.trigger();
        let f = s.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            f.force();
        });
        let t = std::time::Instant::now();
        let why = Arc::new(Mutex::new(None));
        let w = why.clone();
        let stopped = s
            .clone()
            .run(Duration::from_secs(60), std::future::pending(), move |a| {
                *w.lock().unwrap() = Some(a);
            })
            .await;
        assert_eq!(
            stopped,
            Stopped {
                abandoned: true,
                joined: false,
                forced: true,
            }
        );
        assert_eq!(*why.lock().unwrap(), Some(Abandoned::Forced));
        assert!(s.abandon().is_cancelled() && s.background().is_cancelled());
        let took = t.elapsed();
        assert!(
            took < FORCED_JOIN + Duration::from_millis(500),
            "forced stop took {took:?}"
        );
    }
}
