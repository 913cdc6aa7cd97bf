//! `just bench`: errand's standard workloads, run against a private
//! redis-server and the real `errand-api` / `errand-worker` binaries on loopback. Each figure
//! is the median of `--runs` runs (min–max beside it); the table prints the target next to
//! each figure, and `target/bench/results.json` holds the same numbers for machines.

mod cluster;
mod deploy;
mod flow;
mod python;
mod raw;
mod workflows;
mod workloads;

use std::{collections::BTreeMap, path::PathBuf};

use clap::Parser;
use serde_json::json;

use crate::workloads::Workload;

#[derive(Parser)]
#[command(about = "errand's benchmark harness")]
struct Cli {
    /// Workloads to run (W1 … W8); all when none are given.
    workloads: Vec<Workload>,
    /// Runs per figure; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Tasks in W1 and W2.
    #[arg(long, default_value_t = 20_000)]
    tasks: usize,
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
}

/// One figure: every run's value.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples(Vec<f64>);

impl Samples {
    pub(crate) fn push(&mut self, v: f64) {
        self.0.push(v);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    pub(crate) fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }

    fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
}

/// How a figure compares with its target.
struct Target {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    /// `Some((value, higher_is_better))`.
    goal: Option<(f64, bool)>,
}

const TARGETS: &[Target] = &[
    Target {
        key: "w1_single_tps",
        label: "W1a submit, 1 client",
        unit: "tasks/s",
        goal: Some((6_000.0, true)),
    },
    Target {
        key: "w1_conc64_tps",
        label: "W1b submit, 64 connections",
        unit: "tasks/s",
        goal: Some((30_000.0, true)),
    },
    Target {
        key: "w1_registered_conc64_tps",
        label: "W1d submit of a registered kind (JSON Schema), 64 conns",
        unit: "tasks/s",
        goal: None,
    },
    Target {
        key: "w1_registered_vs_noop",
        label: "W1d / W1b (what schema validation costs)",
        unit: "ratio",
        goal: Some((0.9, true)),
    },
    Target {
        key: "w1_api_cpu_us_per_submit",
        label: "W1b api CPU per submit (noop)",
        unit: "us",
        goal: None,
    },
    Target {
        key: "w1_registered_api_cpu_us_per_submit",
        label: "W1d api CPU per submit (registered kind)",
        unit: "us",
        goal: None,
    },
    Target {
        key: "w1_batch_tps",
        label: "W1c submit, batches of 1000",
        unit: "tasks/s",
        goal: Some((100_000.0, true)),
    },
    Target {
        key: "w2_drain_1proc_tps",
        label: "W2 drain, 1 worker process",
        unit: "tasks/s",
        goal: None,
    },
    Target {
        key: "w2_drain_1proc_metrics_tps",
        label: "W2 drain, 1 process, metrics on",
        unit: "tasks/s",
        goal: None,
    },
    Target {
        key: "w2_metrics_on_vs_off",
        label: "W2 metrics on / off",
        unit: "ratio",
        goal: Some((0.95, true)),
    },
    Target {
        key: "w2_worker_cpu_metrics_us_per_task",
        label: "W2 worker CPU per task, metrics on",
        unit: "us",
        goal: None,
    },
    Target {
        key: "w2_raw_apalis_tps",
        label: "W2 raw apalis-redis (no record)",
        unit: "tasks/s",
        goal: None,
    },
    Target {
        key: "w2_errand_vs_raw",
        label: "W2 errand / raw apalis-redis",
        unit: "ratio",
        goal: Some((0.55, true)),
    },
    Target {
        key: "w2_drain_2proc_tps",
        label: "W2 drain, 2 worker processes",
        unit: "tasks/s",
        goal: None,
    },
    Target {
        key: "w5_cluster_tps",
        label: "W5 drain, 3 queues on a 3-master cluster",
        unit: "tasks/s",
        goal: None,
    },
    Target {
        key: "w5_single_tps",
        label: "W5 drain, the same 3 queues on one Redis",
        unit: "tasks/s",
        goal: None,
    },
    Target {
        key: "w5_cluster_redis_us_per_task",
        label: "W5 cluster masters' CPU per task",
        unit: "us",
        goal: None,
    },
    Target {
        key: "w5_cluster_replica_us_per_task",
        label: "W5 cluster replicas' CPU per task",
        unit: "us",
        goal: None,
    },
    Target {
        key: "w5_single_redis_us_per_task",
        label: "W5 one Redis's CPU per task",
        unit: "us",
        goal: None,
    },
    Target {
        key: "w6_python_drain_tps",
        label: "W6 drain, 1 Python SDK process",
        unit: "tasks/s",
        goal: Some((4000.0, true)),
    },
    Target {
        key: "w6_http_requests_per_1000_tasks",
        label: "W6 HTTP requests per 1,000 tasks",
        unit: "requests",
        goal: None,
    },
    Target {
        key: "w6_api_cpu_us_per_task",
        label: "W6 api CPU per task",
        unit: "us",
        goal: None,
    },
    Target {
        key: "w6_python_cpu_us_per_task",
        label: "W6 Python worker CPU per task",
        unit: "us",
        goal: None,
    },
    Target {
        key: "w7a_chord_ms",
        label: "W7a chord of 1,000 noops into 1",
        unit: "ms",
        goal: None,
    },
    Target {
        key: "w7a_plain_ms",
        label: "W7a 1,000 tasks then 1 (no workflow)",
        unit: "ms",
        goal: None,
    },
    Target {
        key: "w7a_submit_ms",
        label: "W7a the chord's submit (1,001 steps)",
        unit: "ms",
        goal: None,
    },
    Target {
        key: "w7a_chord_vs_plain",
        label: "W7a chord / plain",
        unit: "x",
        goal: Some((1.5, false)),
    },
    Target {
        key: "w7b_hop_p50_ms",
        label: "W7b chain of 100: hop p50",
        unit: "ms",
        goal: Some((2.0, false)),
    },
    Target {
        key: "w7b_hop_p99_ms",
        label: "W7b chain of 100: hop p99",
        unit: "ms",
        goal: None,
    },
    Target {
        key: "w7b_ms_per_step",
        label: "W7b chain of 100: ms a step in all",
        unit: "ms",
        goal: None,
    },
    Target {
        key: "w8_rate_tps",
        label: "W8 started/s, queue limited to 500/s",
        unit: "tasks/s",
        goal: None,
    },
    Target {
        key: "w8_rate_error_pct",
        label: "W8 off the limit over 10 s",
        unit: "%",
        goal: Some((5.0, false)),
    },
    Target {
        key: "w8_max_1s_window",
        label: "W8 most started in any 1 s",
        unit: "tasks",
        goal: Some((550.0, false)),
    },
    Target {
        key: "w8_key_max_running_sampled",
        label: "W8 key limit 2: most running (sampled)",
        unit: "tasks",
        goal: Some((2.0, false)),
    },
    Target {
        key: "w8_key_max_running_records",
        label: "W8 key limit 2: most running (records)",
        unit: "tasks",
        goal: Some((2.0, false)),
    },
    Target {
        key: "w8_other_keys_tps",
        label: "W8 other keys' drain",
        unit: "tasks/s",
        goal: None,
    },
    Target {
        key: "w8_other_keys_vs_unlimited",
        label: "W8 other keys / no limits",
        unit: "ratio",
        goal: Some((0.9, true)),
    },
    Target {
        key: "w8_w2_priorities_vs_plain",
        label: "W8 W2 drain, priorities 1-9 / plain",
        unit: "ratio",
        goal: Some((0.9, true)),
    },
    Target {
        key: "w8_w2_limits_idle_vs_plain",
        label: "W8 W2 drain, limits idle / plain",
        unit: "ratio",
        goal: Some((0.95, true)),
    },
    Target {
        key: "w2_2proc_vs_1proc",
        label: "W2 2 processes / 1 process",
        unit: "ratio",
        goal: Some((1.2, true)),
    },
    Target {
        key: "w2_worker_cpu_us_per_task",
        label: "W2 worker CPU per task",
        unit: "us",
        goal: Some((12.0, false)),
    },
    Target {
        key: "w2_redis_cpu_us_per_task",
        label: "W2 Redis CPU per task (all of it)",
        unit: "us",
        goal: None,
    },
    Target {
        key: "w2_redis_script_us_per_task",
        label: "W2 Redis time per task (commandstats)",
        unit: "us",
        goal: Some((22.0, false)),
    },
    Target {
        key: "w2_redis_script_calls_per_task",
        label: "W2 script calls per task",
        unit: "calls",
        goal: None,
    },
    Target {
        key: "w3_wall_s",
        label: "W3 2000 x 50 ms, conc 100",
        unit: "s",
        goal: Some((1.03, false)),
    },
    Target {
        key: "w4_p50_ms",
        label: "W4 submit+wait p50",
        unit: "ms",
        goal: Some((0.5, false)),
    },
    Target {
        key: "w4_p99_ms",
        label: "W4 submit+wait p99",
        unit: "ms",
        goal: Some((1.0, false)),
    },
    Target {
        key: "api_rss_mb",
        label: "api peak RSS during W2",
        unit: "MB",
        goal: Some((50.0, false)),
    },
    Target {
        key: "worker_rss_mb",
        label: "worker peak RSS during W2",
        unit: "MB",
        goal: Some((50.0, false)),
    },
    Target {
        key: "redis_bytes_per_task",
        label: "Redis memory per finished task",
        unit: "B",
        goal: None,
    },
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let selected = if cli.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        cli.workloads.clone()
    };
    let mut figures: BTreeMap<&'static str, Samples> = BTreeMap::new();
    for w in selected {
        eprintln!("== {w:?} ({} runs)", cli.runs);
        for run in 1..=cli.runs {
            let got = workloads::run(w, cli.tasks).await?;
            for (k, v) in got {
                eprintln!("   run {run}: {k} = {v:.2}");
                figures.entry(k).or_default().push(v);
            }
        }
    }

    println!(
        "\n{:<34} {:>12} {:>23} {:>12}  unit",
        "figure", "median", "min – max", "target"
    );
    for t in TARGETS {
        let Some(s) = figures.get(t.key) else {
            continue;
        };
        let (target, verdict) = match t.goal {
            Some((g, higher)) => {
                let met = if higher {
                    s.median() >= g
                } else {
                    s.median() <= g
                };
                (
                    format!("{}{g}", if higher { ">= " } else { "<= " }),
                    if met { "met" } else { "MISSED" },
                )
            }
            None => ("—".to_owned(), ""),
        };
        println!(
            "{:<34} {:>12.2} {:>10.2} – {:<10.2} {:>12}  {} {}",
            t.label,
            s.median(),
            s.min(),
            s.max(),
            target,
            t.unit,
            verdict
        );
    }

    let json: serde_json::Map<String, serde_json::Value> = figures
        .iter()
        .map(|(k, s)| {
            (
                (*k).to_owned(),
                json!({"median": s.median(), "min": s.min(), "max": s.max(), "runs": s.0}),
            )
        })
        .collect();
    if let Some(dir) = cli.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&cli.out, serde_json::to_string_pretty(&json)?)?;
    println!("\nwrote {}", cli.out.display());
    Ok(())
}
