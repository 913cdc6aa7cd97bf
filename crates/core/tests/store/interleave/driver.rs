//! A run: steps drawn from a seed (or given as a script), each applied, read back and
//! checked; the first violation ends it with a report that replays (seed, step, the
//! invariant, the last steps).

use std::fmt;

use errand_testkit::RedisServer;

use super::{
    invariants,
    model::{TRACE, Tally, World},
    ops::{self, Op},
    rng::Rng,
};

/// How a random run is made.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) steps: usize,
    /// Op names never drawn (`ERRAND_INTERLEAVE_OFF`).
    pub(crate) off: Vec<String>,
}

impl Config {
    /// `steps` unless `ERRAND_INTERLEAVE_STEPS` says otherwise; `ERRAND_INTERLEAVE_OFF`.
    pub(crate) fn from_env(steps: usize) -> Self {
        let off: Vec<String> = std::env::var("ERRAND_INTERLEAVE_OFF")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let known = ops::names();
        for o in &off {
            assert!(
                known.contains(&o.as_str()),
                "ERRAND_INTERLEAVE_OFF: `{o}` is not one of {known:?}"
            );
        }
        Self {
            steps: env("ERRAND_INTERLEAVE_STEPS").unwrap_or(steps as u64) as usize,
            off,
        }
    }
}

/// A number from the environment; a malformed one fails the test rather than being
/// ignored.
pub(crate) fn env(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// A run that broke an invariant.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// The seed, or the script's name.
    pub(crate) run: String,
    pub(crate) step: usize,
    pub(crate) invariant: &'static str,
    pub(crate) detail: String,
    pub(crate) trace: Vec<String>,
    /// Earlier steps that name the tasks the violation names.
    pub(crate) earlier: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "interleaving checker: {} broke an invariant at step {}",
            self.run, self.step
        )?;
        writeln!(f, "  invariant: {}", self.invariant)?;
        writeln!(f, "  what:      {}", self.detail)?;
        if !self.earlier.is_empty() {
            writeln!(f, "  earlier steps naming those tasks:")?;
            for line in &self.earlier {
                writeln!(f, "    {line}")?;
            }
        }
        writeln!(f, "  the last {} steps:", self.trace.len().min(TRACE))?;
        for line in &self.trace {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// One step: `op`, then everything read back and checked.
async fn step(w: &mut World, op: Op) {
    w.step += 1;
    w.retried = None;
    ops::apply(w, op).await;
    let obs = invariants::observe(w).await;
    invariants::check(w, &obs);
    super::workflows::check(w).await;
}

fn failed(w: &mut World, run: String) -> Option<Failure> {
    let v = w.violation.take()?;
    let earlier = w.earlier(&v.detail);
    Some(Failure {
        earlier,
        run,
        step: w.step,
        invariant: v.invariant,
        detail: v.detail,
        trace: w.trace.iter().cloned().collect(),
    })
}

/// A random run of `cfg.steps` steps from `seed`, under its own key prefix.
pub(crate) async fn run(redis: &RedisServer, seed: u64, cfg: &Config) -> Result<Tally, Failure> {
    let mut w = World::new(redis, &format!("il{seed}")).await;
    let mut rng = Rng::new(seed);
    for _ in 0..cfg.steps {
        let op = ops::pick(&mut rng, &mut w, &cfg.off);
        step(&mut w, op).await;
        if let Some(f) = failed(
            &mut w,
            format!("seed {seed} (ERRAND_INTERLEAVE_SEED={seed})"),
        ) {
            return Err(f);
        }
    }
    super::workflows::run_out(&mut w).await;
    if let Some(f) = failed(
        &mut w,
        format!("seed {seed} (ERRAND_INTERLEAVE_SEED={seed}), running out"),
    ) {
        return Err(f);
    }
    Ok(w.tally)
}

/// The steps `ops`, in order, under key prefix `name`; the world at the end.
pub(crate) async fn script(
    redis: &RedisServer,
    name: &str,
    ops: Vec<Op>,
) -> Result<World, Failure> {
    let mut w = World::new(redis, name).await;
    for op in ops {
        step(&mut w, op).await;
        if let Some(f) = failed(&mut w, format!("script `{name}`")) {
            return Err(f);
        }
    }
    Ok(w)
}
