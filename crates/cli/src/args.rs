//! The command line (clap): every command, its flags, and their parsers.

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use errand_client::{BulkAction, TaskState, WebhookEvent};

/// The command line for errand, a Redis-backed task queue.
///
/// Exit codes: 0 done (a followed task succeeded), 1 task failed, 2 usage, 3 task
/// cancelled, 4 API unreachable, unavailable or rate-limited, 5 refused by the API, 6 task record gone,
/// 70 internal.
#[derive(Debug, Parser)]
#[command(name = "errand", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    /// The API's base URL.
    #[arg(
        long,
        global = true,
        env = "ERRAND_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub(crate) url: String,
    /// Sent as `Authorization: Bearer <key>` (needed when the server has api.api_keys).
    #[arg(long, global = true, env = "ERRAND_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// `text` for people, `json` for scripts (the API's own JSON; `watch` prints one event
    /// per line).
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Submit a task; with --wait, follow it to its end and exit with its outcome.
    Submit(Submit),
    /// Show a task's record.
    Get { id: String },
    /// Follow a task live (a progress bar on a terminal) and exit with its outcome.
    Watch { id: String },
    /// List tasks, newest first: one page, or every page with --all.
    List(List),
    /// Cancel a task (a running one is told to stop).
    Cancel { id: String },
    /// Queue a failed or cancelled task again.
    Retry { id: String },
    /// Queues with their tasks counted by state.
    Queues,
    /// Pause a queue: its workers take none of its tasks until it is resumed (running tasks
    /// finish; submits are still accepted).
    Pause { queue: String },
    /// Resume a paused queue; its idle workers fetch at once.
    Resume { queue: String },
    /// Show a queue's limits and what they hold back; with any flag, set them (all of them:
    /// what is not given is removed).
    Limits(Limits),
    /// Retry, cancel or delete every task of a queue matching a state, kind and error kind,
    /// worked by the server in slices; follows it with a progress bar unless --no-wait.
    Bulk(Bulk),
    /// Workflows: steps and the dependencies between them (docs/workflows.md).
    #[command(subcommand)]
    Workflow(Workflow),
    /// Worker processes alive now.
    Workers,
    /// Periodic schedules.
    #[command(subcommand)]
    Schedules(Schedules),
    /// The task kinds registered (by the workers that run them): with a name, that kind's
    /// payload schema and who runs it.
    Kinds {
        /// One kind (its name or an alias): its full definition.
        name: Option<String>,
    },
    /// Print a shell completion script, e.g. `errand completions bash > /etc/bash_completion.d/errand`.
    Completions { shell: Shell },
}

#[derive(Debug, Args)]
pub(crate) struct Submit {
    /// A kind from `errand kinds` (aliases accepted).
    pub(crate) kind: String,
    /// The kind's input as JSON, or `@FILE` to read it from a file (`@-`: stdin).
    #[arg(long, short)]
    pub(crate) payload: Option<String>,
    #[arg(long, short)]
    pub(crate) queue: Option<String>,
    /// Client-chosen id: submitting it again returns the existing task.
    #[arg(long)]
    pub(crate) id: Option<String>,
    /// Run no earlier than this many seconds from now.
    #[arg(long, value_name = "SECS")]
    pub(crate) delay: Option<u64>,
    #[arg(long)]
    pub(crate) max_attempts: Option<u32>,
    /// Per-attempt time limit in seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<u64>,
    /// Unique for a while: a submit of the same key in the queue inside the window
    /// (`--unique-for`) returns the first task.
    #[arg(long, value_name = "KEY", requires = "unique_for")]
    pub(crate) unique_key: Option<String>,
    /// How long `--unique-key` is held, in seconds.
    #[arg(long, value_name = "SECS", requires = "unique_key")]
    pub(crate) unique_for: Option<u64>,
    /// 1 to 9, higher first (default 5).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub(crate) priority: Option<u8>,
    /// Counted under the queue's limit of running tasks per key (`errand limits --per-key`).
    #[arg(long, value_name = "KEY")]
    pub(crate) concurrency_key: Option<String>,
    /// POST a signed webhook to this URL when the task ends (docs/webhooks.md).
    #[arg(long, value_name = "URL")]
    pub(crate) callback: Option<String>,
    /// Only for these endings (comma-separated: succeeded,failed,cancelled; default all).
    #[arg(long, value_name = "EVENTS", value_delimiter = ',', requires = "callback", value_parser = parse_event)]
    pub(crate) callback_events: Vec<WebhookEvent>,
    /// Follow the task to its end (progress bar on a terminal); exit with its outcome.
    #[arg(long, short)]
    pub(crate) wait: bool,
}

#[derive(Debug, Args)]
pub(crate) struct Limits {
    pub(crate) queue: String,
    /// The queue's rate across all workers: COUNT/PERIOD, e.g. 500/1s, 10/250ms, 100/1m.
    #[arg(long, value_name = "COUNT/PERIOD", value_parser = parse_rate)]
    pub(crate) rate: Option<(u32, u64)>,
    /// How many may start at once after an idle spell (with --rate; default 1).
    #[arg(long, requires = "rate")]
    pub(crate) burst: Option<u32>,
    /// A kind's rate: KIND=COUNT/PERIOD[:BURST], e.g. http_request=10/1s:5 (repeatable).
    #[arg(long, value_name = "KIND=COUNT/PERIOD[:BURST]", value_parser = parse_kind_rate)]
    pub(crate) kind_rate: Vec<(String, u32, u64, u32)>,
    /// Most running tasks per concurrency key.
    #[arg(long)]
    pub(crate) per_key: Option<u32>,
    /// Remove every limit.
    #[arg(long, conflicts_with_all = ["rate", "kind_rate", "per_key"])]
    pub(crate) clear: bool,
}

#[derive(Debug, Args)]
pub(crate) struct Bulk {
    pub(crate) queue: String,
    /// retry (failed or cancelled tasks), cancel (waiting or running ones) or delete
    /// (terminal ones).
    #[arg(value_parser = parse_action)]
    pub(crate) action: BulkAction,
    /// The state to act on (default: failed for retry and delete, queued for cancel).
    #[arg(long, value_parser = parse_state)]
    pub(crate) state: Option<TaskState>,
    #[arg(long)]
    pub(crate) kind: Option<String>,
    /// Only tasks whose last error has this kind (timeout, worker_lost, …).
    #[arg(long)]
    pub(crate) error_kind: Option<String>,
    /// Print the job and return at once instead of following it.
    #[arg(long)]
    pub(crate) no_wait: bool,
}

fn parse_action(s: &str) -> Result<BulkAction, String> {
    s.parse()
        .map_err(|_| format!("`{s}`: one of retry, cancel, delete"))
}

/// `COUNT/PERIOD`, the period a number with `ms`, `s`, `m` or `h`.
pub(crate) fn parse_rate(s: &str) -> Result<(u32, u64), String> {
    let bad = || format!("`{s}`: give COUNT/PERIOD, e.g. 500/1s, 10/250ms, 100/1m");
    let (count, period) = s.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let period = period.trim();
    if period.is_empty() {
        return Err(bad());
    }
    let (n, unit) = period
        .find(|c: char| !c.is_ascii_digit())
        .map_or((period, "ms"), |i| period.split_at(i));
    let n: u64 = if n.is_empty() {
        1
    } else {
        n.parse().map_err(|_| bad())?
    };
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    Ok((count, n * ms))
}

fn parse_kind_rate(s: &str) -> Result<(String, u32, u64, u32), String> {
    let (kind, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: give KIND=COUNT/PERIOD[:BURST]"))?;
    let (rate, burst) = match rest.split_once(':') {
        Some((r, b)) => (
            r,
            b.parse()
                .map_err(|_| format!("`{s}`: the burst is a number"))?,
        ),
        None => (rest, 1),
    };
    let (count, period) = parse_rate(rate)?;
    Ok((kind.to_owned(), count, period, burst))
}

#[derive(Debug, Args)]
pub(crate) struct List {
    #[arg(long, value_parser = parse_state)]
    pub(crate) state: Option<TaskState>,
    #[arg(long)]
    pub(crate) queue: Option<String>,
    #[arg(long)]
    pub(crate) kind: Option<String>,
    /// Page size (1 to 500).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub(crate) limit: u32,
    /// Continue from a previous page's cursor.
    #[arg(long, conflicts_with = "all")]
    pub(crate) cursor: Option<String>,
    /// Every matching task, page after page.
    #[arg(long)]
    pub(crate) all: bool,
}

fn parse_event(s: &str) -> Result<WebhookEvent, String> {
    s.parse::<WebhookEvent>()
        .map_err(|e| format!("{e}; one of succeeded, failed, cancelled"))
}

fn parse_state(s: &str) -> Result<TaskState, String> {
    s.parse::<TaskState>().map_err(|e| {
        let all: Vec<_> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
        format!("{e}; one of {}", all.join(", "))
    })
}

#[derive(Debug, Subcommand)]
pub(crate) enum Schedules {
    /// Every schedule, in id order.
    List,
    /// Create a schedule (the same id and definition again changes nothing).
    Create(CreateSchedule),
    /// Show one schedule.
    Get {
        id: String,
    },
    Delete {
        id: String,
    },
    Enable {
        id: String,
    },
    Disable {
        id: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CreateSchedule {
    /// Cron expression: 5 fields (minute first), 6 (seconds first) or @hourly, @daily…
    #[arg(long)]
    pub(crate) cron: String,
    #[arg(long)]
    pub(crate) kind: String,
    /// The kind's input as JSON, or `@FILE` (`@-`: stdin).
    #[arg(long, short)]
    pub(crate) payload: Option<String>,
    /// Server-made when absent.
    #[arg(long)]
    pub(crate) id: Option<String>,
    /// IANA time zone the expression is read in (default UTC).
    #[arg(long)]
    pub(crate) timezone: Option<String>,
    #[arg(long, short)]
    pub(crate) queue: Option<String>,
    /// `run_once` (default) or `skip`.
    #[arg(long)]
    pub(crate) misfire: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    pub(crate) disabled: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Workflow {
    /// Submit a workflow from its JSON definition (the body of `POST /v1/workflows`); with
    /// --wait, follow it to its end and exit with its outcome.
    Submit {
        /// A file holding the definition, or `-` for stdin.
        file: String,
        /// Follow it to its end (as `errand workflow watch`).
        #[arg(long)]
        wait: bool,
    },
    /// Show a workflow: each step's state and result.
    Get { id: String },
    /// Follow a workflow live (a progress bar on a terminal) and exit with its outcome.
    Watch { id: String },
    /// Cancel a workflow: steps not started never will, running ones are told to stop.
    Cancel { id: String },
    /// Workflows, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}
