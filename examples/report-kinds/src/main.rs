//! report-worker: errand's worker running this crate's kinds (`csv_summary`, `thumbnail`),
//! and errand's built-in ones with `--builtin`. Settings as for `errand-worker`: config/
//! (ERRAND_CONFIG_DIR) and ERRAND__* variables; stops in phases on SIGTERM/SIGINT.

use clap::Parser;
use errand_worker::{Settings, Worker, telemetry};
use report_kinds::{CsvSummary, Thumbnail};

/// Runs the csv_summary and thumbnail tasks of the queues it serves. Settings come from
/// config/ and ERRAND__* variables, as for errand-worker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Queues to serve with their concurrency, e.g. `reports=4,images=2` (overrides
    /// worker.queues). Its own queue by default: a worker that does not run a kind fails
    /// its tasks' attempts, so kinds of their own get queues of their own.
    #[arg(long, env = "REPORT_WORKER_QUEUES", default_value = "reports=4")]
    queues: String,
    /// Run errand's built-in kinds too (`sleep`, `sha256`, …).
    #[arg(long, env = "REPORT_WORKER_BUILTIN")]
    builtin: bool,
}

/// `name=concurrency,…` as `worker.queues`. Built from JSON, so that this crate needs no
/// dependency beyond errand-worker to name the settings' queue type.
fn queues(s: &str) -> anyhow::Result<serde_json::Value> {
    let queues = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (name, concurrency) = p.split_once('=').unwrap_or((p, "4"));
            let concurrency: usize = concurrency.trim().parse().map_err(|e| {
                anyhow::anyhow!("--queues: `{p}`: the concurrency is not a number ({e})")
            })?;
            anyhow::ensure!(
                concurrency > 0,
                "--queues: `{p}`: the concurrency must be 1 or more"
            );
            Ok(serde_json::json!({"name": name.trim(), "concurrency": concurrency}))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!queues.is_empty(), "--queues names no queue");
    Ok(queues.into())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load()?;
    settings.worker.queues = serde_json::from_value(queues(&cli.queues)?)?;
    let _telemetry = telemetry::init(
        "report-worker",
        &settings.log,
        &settings.telemetry,
        std::io::stdout,
    )?;
    let mut worker = Worker::builder(settings)
        .kind::<CsvSummary>()
        .kind::<Thumbnail>();
    if cli.builtin {
        worker = worker.builtin();
    }
    let result = worker.run_until_stopped().await;
    if let Err(e) = &result {
        tracing::error!(error = ?e, "worker failed");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_read_as_the_settings_list() {
        assert_eq!(
            queues("reports=4, images = 2,,").unwrap(),
            serde_json::json!([
                {"name": "reports", "concurrency": 4},
                {"name": "images", "concurrency": 2}
            ])
        );
        for bad in ["reports=many", "reports=0", ","] {
            assert!(queues(bad).is_err(), "{bad}");
        }
    }
}
