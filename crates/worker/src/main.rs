//! The errand-worker binary: settings, telemetry, signals; the rest is in the library.

use clap::Parser;
use errand_core::{Settings, settings::QueueSettings, shutdown::Shutdown, telemetry};

/// Runs errand tasks from Redis. Settings come from config/ and ERRAND__* variables.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Queues to serve with their concurrency, e.g. `default=16,emails=4`
    /// (overrides worker.queues).
    #[arg(long, env = "ERRAND_QUEUES")]
    queues: Option<String>,
}

fn parse_queues(s: &str) -> anyhow::Result<Vec<QueueSettings>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (name, conc) = p.split_once('=').unwrap_or((p, "16"));
            Ok(QueueSettings {
                name: name.trim().to_owned(),
                concurrency: conc.trim().parse()?,
            })
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load()?;
    if let Some(q) = cli.queues {
        settings.worker.queues = parse_queues(&q)?;
    }
    let _telemetry = telemetry::init(
        "errand-worker",
        &settings.log,
        &settings.telemetry,
        std::io::stdout,
    )?;
    let shutdown = Shutdown::new(errand_worker::join_deadline(&settings));
    shutdown.listen_for_signals();
    let result = errand_worker::run_until_stopped(settings, shutdown).await;
    if let Err(e) = &result {
        tracing::error!(error = ?e, "worker failed");
    }
    result
}
