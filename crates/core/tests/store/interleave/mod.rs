//! The interleaving checker: the store's operations (submit, fetch, renew, progress,
//! finish, recover, release, cancel, retry, expire, a schedule's tick, webhook claim and
//! settle, and workflows: submit, steps run and applied or not, outbox leases lapsing,
//! upkeep's look, cancel, retry) driven as several simulated workers and clients against a real redis-server,
//! in seeded random orders with lost replies, lapsed leases and damaged records injected,
//! and every invariant (`invariants`) checked after every step.
//!
//! A failure prints its seed, the step, the invariant and the last steps; set
//! `ERRAND_INTERLEAVE_SEED` to replay it. The environment shapes a run:
//! `ERRAND_INTERLEAVE_SEED` (first seed), `ERRAND_INTERLEAVE_RUNS` (seeds from there),
//! `ERRAND_INTERLEAVE_STEPS` (per run), `ERRAND_INTERLEAVE_OFF` (op names never drawn,
//! comma-separated; `lost` for no lost replies).
//!
//! `claims` is the only code that knows how an attempt is fenced; `model` what the actors
//! and the checker know; `ops` the steps; `driver` a run; `holes` the exact sequences of
//! the holes the checker found.

mod claims;
mod driver;
mod holes;
mod invariants;
mod model;
mod ops;
mod rng;
mod workflows;

use std::time::Instant;

use errand_testkit::RedisServer;

use self::{
    driver::{Config, env},
    model::Tally,
};

/// What `just test` runs: a few seeds, bounded, well inside the suite's budget.
#[tokio::test]
async fn random_interleavings_keep_every_invariant() {
    let redis = RedisServer::start().await;
    let cfg = Config::from_env(1500);
    let first = env("ERRAND_INTERLEAVE_SEED").unwrap_or(1);
    let runs = env("ERRAND_INTERLEAVE_RUNS").unwrap_or(3);
    let started = Instant::now();
    let mut tally = Tally::default();
    for seed in first..first + runs {
        match driver::run(&redis, seed, &cfg).await {
            Ok(t) => tally.add(&t),
            Err(f) => panic!("{f}"),
        }
    }
    println!(
        "interleave: {runs} runs x {} steps in {:.1}s: {}",
        cfg.steps,
        started.elapsed().as_secs_f64(),
        tally.figures()
    );
    if !tally.errors.is_empty() {
        println!("interleave: store errors: {:?}", tally.errors);
    }
    assert!(
        tally.claims > 0 && tally.stale_refused > 0 && tally.lapses > 0,
        "the runs never exercised the fences: {}",
        tally.figures()
    );
}

/// What `just chaos` runs: many more seeds and steps, from a seed that changes per run
/// (printed; `ERRAND_INTERLEAVE_SEED` fixes it). Every failing seed is reported.
#[tokio::test]
#[ignore = "long; `just chaos` runs it"]
async fn chaos_many_long_interleavings_keep_every_invariant() {
    let redis = RedisServer::start().await;
    let cfg = Config::from_env(10_000);
    let first = env("ERRAND_INTERLEAVE_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 1_000_000
            * 1000
    });
    let runs = env("ERRAND_INTERLEAVE_RUNS").unwrap_or(8);
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    let mut steps = 0;
    for seed in first..first + runs {
        match driver::run(&redis, seed, &cfg).await {
            Ok(t) => {
                steps += cfg.steps;
                tally.add(&t);
            }
            Err(f) => {
                steps += f.step;
                println!("{f}");
                failures.push(f);
            }
        }
    }
    let mut by: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for f in &failures {
        by.entry(f.invariant).or_default().push(format!(
            "{}@{}",
            f.run.split(' ').nth(1).unwrap_or("?"),
            f.step
        ));
    }
    println!(
        "chaos[interleave] seeds={first}..{} runs={runs} steps={steps} secs={:.0} violations={} {} first_violations={by:?}",
        first + runs,
        started.elapsed().as_secs_f64(),
        failures.len(),
        tally.figures(),
    );
    if !tally.errors.is_empty() {
        println!("interleave store errors: {:?}", tally.errors);
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs broke an invariant (above)",
        failures.len()
    );
}
