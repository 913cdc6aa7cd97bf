//! [`Worker::builder`]: a worker process with the kinds you give it. `errand-worker` is this
//! builder with the built-in kinds; your own binary adds its own.

use std::time::Duration;

use errand_core::{Settings, shutdown::Shutdown};
use errand_kinds::{Catalog, Limits, TaskKind};

use crate::{
    drain::{self, DrainReport},
    metrics,
    process::{Process, join_deadline},
};

/// errand's worker, run from your own binary. See [`Worker::builder`].
#[derive(Debug)]
pub struct Worker;

impl Worker {
    /// A worker configured by `settings` (queues, Redis, leases, webhooks, metrics: the
    /// same settings as `errand-worker`), running the kinds you add.
    ///
    /// ```no_run
    /// use errand_worker::{Settings, Worker, kinds::builtin::noop::Noop as MyKind};
    /// # async fn run() -> anyhow::Result<()> {
    /// let settings = Settings::load()?;
    /// Worker::builder(settings)
    ///     .kind::<MyKind>() // your TaskKind impls, one line each
    ///     .run_until_stopped()
    ///     .await
    /// # }
    /// ```
    pub fn builder(settings: Settings) -> WorkerBuilder {
        let catalog = Catalog::empty(Limits::from(&settings.tasks));
        WorkerBuilder {
            settings,
            catalog,
            shutdown: None,
        }
    }
}

/// The kinds and the stop of a worker about to run ([`Worker::builder`]).
#[derive(Debug)]
pub struct WorkerBuilder {
    settings: Settings,
    catalog: Catalog,
    shutdown: Option<Shutdown>,
}

impl WorkerBuilder {
    /// Runs kind `K`, registering its definition (name, aliases, payload and result JSON
    /// Schema) so the stock api accepts and validates its submits.
    pub fn kind<K: TaskKind>(mut self) -> Self {
        self.catalog = self.catalog.with::<K>();
        self
    }

    /// Runs errand's built-in kinds too (`sleep`, `noop`, `sha256`, `fibonacci`,
    /// `http_request`, `fan_out`, `send_email`; `chaos` with `tasks.diagnostic_kinds`).
    pub fn builtin(mut self) -> Self {
        self.catalog = self.catalog.with_builtin();
        self
    }

    /// Stops when `shutdown` is triggered, instead of on SIGTERM/SIGINT: for a process that
    /// owns its stop (tests, a binary that runs more than the worker).
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// The kinds added so far, as the worker will register them.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn checked(&self) -> anyhow::Result<()> {
        if let Some(p) = self.catalog.problems().first() {
            anyhow::bail!("{p}");
        }
        if self.catalog.is_empty() {
            anyhow::bail!("the worker runs no kind: add some with .kind::<K>() or .builtin()");
        }
        Ok(())
    }

    /// Runs the worker until the stop (a signal, or the [`shutdown`](Self::shutdown) given),
    /// then stops in its phases: no new tasks; running ones finish for up to
    /// `worker.shutdown_grace_secs`, the rest is abandoned to other workers; every loop is
    /// joined. Fails at once on kinds given twice or a catalog with none.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.checked()?;
        let Self {
            settings,
            catalog,
            shutdown,
        } = self;
        let shutdown = shutdown.unwrap_or_else(|| {
            let s = Shutdown::new(join_deadline(&settings));
            s.listen_for_signals();
            s
        });
        if let Some(addr) = &settings.worker.metrics_addr {
            metrics::install(addr, &shutdown).await?;
        }
        match Process::start(settings, catalog, &shutdown).await? {
            Some(worker) => worker.stop(shutdown).await,
            None => {
                // Stopped while still waiting for Redis: only the metrics listener (and the
                // signal listener) ran; join them.
                tracing::info!("stop requested before the worker started; nothing was taken");
                shutdown.run(Duration::ZERO, async {}, |_| {}).await;
                tracing::info!("worker stopped");
                Ok(())
            }
        }
    }

    /// Runs the worker in this process until its queues are idle, then stops it (see
    /// [`drain()`](crate::drain::drain())): for your kinds' tests.
    pub async fn drain(self, within: Duration) -> anyhow::Result<DrainReport> {
        self.checked()?;
        drain::with(self.settings, self.catalog, within).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_kinds::builtin::noop::Noop;

    fn settings() -> Settings {
        let dir = std::env::temp_dir().join("errand-no-config-here");
        Settings::load_from(errand_core::settings::Environment::Local, &dir).unwrap()
    }

    #[tokio::test]
    async fn a_worker_with_no_kind_or_a_kind_twice_does_not_start() {
        let e = Worker::builder(settings())
            .run_until_stopped()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("runs no kind"), "{e}");
        let e = Worker::builder(settings())
            .kind::<Noop>()
            .builtin()
            .run_until_stopped()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("`noop` is added twice"), "{e}");
    }

    #[test]
    fn the_builder_registers_what_it_was_given() {
        let b = Worker::builder(settings()).kind::<Noop>();
        let names: Vec<String> = b
            .catalog()
            .definitions()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["noop"]);
        assert!(b.builtin().catalog().definitions().len() > 5);
    }
}
