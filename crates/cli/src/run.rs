//! The task commands: submit, get, wait, watch (a progress bar fed by SSE), list, cancel,
//! retry, and the operating views.

use std::{
    io::{IsTerminal, Read, Write},
    time::{Duration, Instant},
};

use clap::CommandFactory;
use errand_client::{Client, Error, ListTasks, QueuePause, SubmitTask, TaskEvent, TaskRecord};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    args::{self, Cli, Command, Output, Schedules},
    exit::{self, CliError},
    output,
};

type Res = Result<u8, CliError>;

pub(crate) async fn run(cli: Cli) -> Res {
    if let Command::Completions { shell } = cli.command {
        let mut cmd = Cli::command();
        clap_complete::generate(shell, &mut cmd, "errand", &mut std::io::stdout());
        return Ok(exit::OK);
    }
    let mut b = Client::builder(&cli.url);
    if let Some(k) = cli.api_key.as_deref().filter(|k| !k.is_empty()) {
        b = b.api_key(k);
    }
    let client = b.build()?;
    let json = cli.output == Output::Json;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Submit(s) => {
            let mut t = SubmitTask::new(s.kind);
            t.payload = s.payload.as_deref().map(payload).transpose()?;
            t.queue = s.queue;
            t.id = s.id;
            t.delay_secs = s.delay;
            t.max_attempts = s.max_attempts;
            t.timeout_secs = s.timeout;
            t.unique_key = s.unique_key;
            t.unique_for_secs = s.unique_for;
            t.priority = s.priority;
            t.concurrency_key = s.concurrency_key;
            if let Some(url) = s.callback {
                t = t.callback(url, &s.callback_events);
            }
            let r = client.submit(&t).await?;
            if s.wait {
                if !json {
                    eprintln!("submitted {} ({})", r.id, r.state.as_str());
                }
                drop(out);
                return follow(&client, r.id.as_str(), json).await;
            }
            if json {
                print_json(&mut out, &r)?;
            } else {
                writeln!(out, "{}", r.id)?;
                eprintln!(
                    "submitted {} ({}, queue {})",
                    r.id,
                    r.state.as_str(),
                    r.queue
                );
            }
        }
        Command::Get { id } => show(&mut out, json, &client.get(&id).await?)?,
        Command::Watch { id } => {
            drop(out);
            return follow(&client, &id, json).await;
        }
        Command::Cancel { id } => {
            let r = client.cancel(&id).await?;
            if json {
                print_json(&mut out, &r)?;
            } else if r.cancel_requested && !r.state.is_terminal() {
                writeln!(out, "{}: cancel requested; its worker is stopping it", r.id)?;
            } else {
                writeln!(out, "{}: {}", r.id, r.state.as_str())?;
            }
        }
        Command::Retry { id } => {
            let r = client.retry(&id).await?;
            if json {
                print_json(&mut out, &r)?;
            } else {
                writeln!(out, "{}: {} again", r.id, r.state.as_str())?;
            }
        }
        Command::List(l) => list(&client, &mut out, json, l).await?,
        Command::Queues => {
            let qs = client.queues().await?;
            if json {
                print_json(&mut out, &json!({ "queues": qs }))?;
            } else {
                let states = [
                    "scheduled",
                    "queued",
                    "running",
                    "retrying",
                    "succeeded",
                    "failed",
                    "cancelled",
                ];
                let mut head = vec!["QUEUE".to_owned()];
                head.extend(states.iter().map(|s| s.to_uppercase()));
                head.push("OLDEST WAIT".into());
                head.push("PAUSED".into());
                let head: Vec<&str> = head.iter().map(String::as_str).collect();
                let rows: Vec<Vec<String>> = qs
                    .iter()
                    .map(|q| {
                        let mut r = vec![q.name.clone()];
                        r.extend(
                            states
                                .iter()
                                .map(|s| q.counts.get(*s).copied().unwrap_or(0).to_string()),
                        );
                        r.push(
                            q.oldest_queued_age_ms
                                .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                                .unwrap_or_else(|| "-".into()),
                        );
                        r.push(if q.paused { "yes" } else { "no" }.into());
                        r
                    })
                    .collect();
                output::table(&mut out, &head, &rows)?;
            }
        }
        Command::Pause { queue } => {
            let p = client.pause_queue(&queue).await?;
            pause_state(&mut out, json, &p)?;
        }
        Command::Resume { queue } => {
            let p = client.resume_queue(&queue).await?;
            pause_state(&mut out, json, &p)?;
        }
        Command::Limits(l) => return crate::flow::limits(&client, l, json, &mut out).await,
        Command::Workflow(w) => {
            drop(out);
            return crate::workflow::run(&client, w, json).await;
        }
        Command::Bulk(b) => {
            drop(out);
            return crate::flow::bulk(&client, b, json).await;
        }
        Command::Workers => {
            let ws = client.workers().await?;
            if json {
                print_json(&mut out, &json!({ "workers": ws }))?;
            } else {
                let rows: Vec<Vec<String>> = ws
                    .iter()
                    .map(|w| {
                        let queues: Vec<String> = w
                            .queues
                            .iter()
                            .map(|q| format!("{}×{}", q.name, q.concurrency))
                            .collect();
                        vec![
                            w.name.clone(),
                            w.pid.to_string(),
                            w.running.to_string(),
                            if w.stopping { "stopping" } else { "up" }.into(),
                            output::time(w.started_at),
                            queues.join(","),
                        ]
                    })
                    .collect();
                output::table(
                    &mut out,
                    &["WORKER", "PID", "RUNNING", "STATUS", "STARTED", "QUEUES"],
                    &rows,
                )?;
            }
        }
        Command::Kinds { name: Some(name) } => {
            let ks = client.kinds().await?;
            let Some(k) = ks
                .iter()
                .find(|k| k.name == name || k.aliases.contains(&name))
            else {
                let known: Vec<&str> = ks.iter().map(|k| k.name.as_str()).collect();
                writeln!(
                    std::io::stderr(),
                    "errand: no kind `{name}`; known kinds: {}",
                    known.join(", ")
                )?;
                return Ok(exit::REFUSED);
            };
            if json {
                print_json(&mut out, k)?;
            } else {
                writeln!(out, "{}  {}", k.name, k.summary)?;
                if !k.aliases.is_empty() {
                    writeln!(out, "aliases:    {}", k.aliases.join(", "))?;
                }
                writeln!(
                    out,
                    "idempotent: {}",
                    if k.idempotent { "yes" } else { "no" }
                )?;
                writeln!(
                    out,
                    "digest:     {} (registered by {})",
                    k.digest, k.registered_by
                )?;
                let workers = if k.workers.is_empty() {
                    "none live: its tasks wait".to_owned()
                } else {
                    k.workers.join(", ")
                };
                writeln!(out, "workers:    {workers}")?;
                if !k.queues.is_empty() {
                    writeln!(out, "queues:     {}", k.queues.join(", "))?;
                }
                if k.schemas_differ {
                    writeln!(
                        out,
                        "note:       live workers registered different schemas; the newest worker's validates"
                    )?;
                }
                writeln!(out, "payload schema:")?;
                writeln!(out, "{:#}", k.payload_schema)?;
                writeln!(out, "example payload: {}", k.example)?;
            }
        }
        Command::Kinds { name: None } => {
            let ks = client.kinds().await?;
            if json {
                print_json(&mut out, &ks)?;
            } else {
                let rows: Vec<Vec<String>> = ks
                    .iter()
                    .map(|k| {
                        vec![
                            k.name.clone(),
                            if k.aliases.is_empty() {
                                "-".into()
                            } else {
                                k.aliases.join(",")
                            },
                            if k.idempotent { "yes" } else { "no" }.into(),
                            k.workers.len().to_string(),
                            if k.queues.is_empty() {
                                "-".into()
                            } else {
                                k.queues.join(",")
                            },
                            k.summary.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &mut out,
                    &[
                        "KIND",
                        "ALIASES",
                        "IDEMPOTENT",
                        "WORKERS",
                        "QUEUES",
                        "SUMMARY",
                    ],
                    &rows,
                )?;
            }
        }
        Command::Schedules(s) => schedules(&client, &mut out, json, s).await?,
        // Printed above, before a client is needed.
        Command::Completions { .. } => {}
    }
    Ok(exit::OK)
}

/// `--payload`: inline JSON, or `@file` / `@-` so large or quoted payloads need no escaping.
fn payload(raw: &str) -> Result<Value, CliError> {
    let text = match raw.strip_prefix('@') {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        }
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("--payload @{path}: {e}")))?,
        None => raw.to_owned(),
    };
    serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("--payload is not JSON: {e}")))
}

fn print_json(out: &mut impl Write, v: &impl Serialize) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    writeln!(out, "{s}")?;
    Ok(())
}

fn show(out: &mut impl Write, json: bool, r: &TaskRecord) -> Result<(), CliError> {
    if json {
        print_json(out, r)
    } else {
        Ok(output::record(out, r)?)
    }
}

async fn list(
    client: &Client,
    out: &mut impl Write,
    json: bool,
    l: args::List,
) -> Result<(), CliError> {
    let q = ListTasks {
        state: l.state,
        queue: l.queue,
        kind: l.kind,
        limit: Some(l.limit),
        cursor: l.cursor,
    };
    let (tasks, next) = if l.all {
        (client.list(q).try_collect::<Vec<_>>().await?, None)
    } else {
        let p = client.list_page(&q).await?;
        (p.tasks, p.next_cursor)
    };
    if json {
        return print_json(out, &json!({ "tasks": tasks, "next_cursor": next }));
    }
    let rows: Vec<Vec<String>> = tasks.iter().map(output::task_row).collect();
    output::table(out, &output::TASK_HEAD, &rows)?;
    if let Some(c) = next {
        eprintln!("more: --cursor {c} (or --all)");
    }
    Ok(())
}

async fn schedules(
    client: &Client,
    out: &mut impl Write,
    json: bool,
    s: Schedules,
) -> Result<(), CliError> {
    let one = match s {
        Schedules::List => {
            let all: Vec<_> = client.schedules().try_collect().await?;
            if json {
                return print_json(out, &json!({ "schedules": all }));
            }
            let rows: Vec<Vec<String>> = all.iter().map(output::schedule_row).collect();
            return Ok(output::table(out, &output::SCHEDULE_HEAD, &rows)?);
        }
        Schedules::Create(c) => {
            client
                .create_schedule(&errand_client::CreateSchedule {
                    id: c.id,
                    cron: c.cron,
                    timezone: c.timezone,
                    kind: c.kind,
                    payload: c.payload.as_deref().map(payload).transpose()?,
                    queue: c.queue,
                    enabled: c.disabled.then_some(false),
                    misfire: c.misfire,
                    ..Default::default()
                })
                .await?
        }
        Schedules::Get { id } => client.schedule(&id).await?,
        Schedules::Delete { id } => {
            client.delete_schedule(&id).await?;
            if json {
                return print_json(out, &json!({ "deleted": id }));
            }
            writeln!(out, "{id}: deleted")?;
            return Ok(());
        }
        Schedules::Enable { id } => client.set_schedule_enabled(&id, true).await?,
        Schedules::Disable { id } => client.set_schedule_enabled(&id, false).await?,
    };
    if json {
        return print_json(out, &one);
    }
    Ok(output::table(
        out,
        &output::SCHEDULE_HEAD,
        &[output::schedule_row(&one)],
    )?)
}

fn event_name(ev: &TaskEvent) -> &'static str {
    match ev {
        TaskEvent::State(r) => r.state.as_str(),
        TaskEvent::Progress(_) => "progress",
        TaskEvent::Gone => "gone",
    }
}

/// How long `watch` keeps reopening a broken event stream (an API restart, a proxy cut)
/// before giving up.
const RECONNECT_FOR: Duration = Duration::from_secs(30);

/// Follows a task to its end over server-sent events and exits with its outcome. A stream
/// cut short (proxy, API restart) is opened again: the first event of a new stream is the
/// record as it is then, so nothing is missed but intermediate progress.
async fn follow(client: &Client, id: &str, json: bool) -> Res {
    let bar = if json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template(
                "{spinner:.cyan} [{bar:24.cyan/blue}] {pos:>3}% {wide_msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        eprintln!("watching {id}");
        b.enable_steady_tick(Duration::from_millis(120));
        b
    };
    // Since when the stream has been down; given up after RECONNECT_FOR without an event.
    let mut down_since: Option<Instant> = None;
    let mut last_state = None;
    let last = 'outer: loop {
        if let Some(t) = down_since {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if t.elapsed() > RECONNECT_FOR {
                bar.abandon();
                return Err(
                    Error::Stream(format!("no events for {} s", RECONNECT_FOR.as_secs())).into(),
                );
            }
        }
        let mut events = match client.watch(id).await {
            Ok(s) => s,
            Err(e) if is_transient(&e) => {
                down_since.get_or_insert_with(Instant::now);
                continue;
            }
            Err(e) => {
                bar.abandon();
                return Err(e.into());
            }
        };
        while let Some(ev) = events.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) if is_transient(&e) => {
                    down_since.get_or_insert_with(Instant::now);
                    continue 'outer;
                }
                Err(e) => {
                    bar.abandon();
                    return Err(e.into());
                }
            };
            down_since = None;
            if json {
                let mut o = std::io::stdout().lock();
                let line = json!({ "event": event_name(&ev), "task": ev.record() });
                writeln!(o, "{line}")?;
                o.flush()?;
            }
            let Some(r) = ev.record() else {
                bar.abandon();
                return Err(CliError::Gone(id.to_owned()));
            };
            let msg = match r.progress.as_ref().and_then(|p| p.message.as_deref()) {
                Some(m) => format!("{} · {m}", r.state.as_str()),
                None => r.state.as_str().to_owned(),
            };
            if let Some(p) = &r.progress {
                bar.set_position(p.percent.into());
            }
            bar.set_message(msg);
            if !json && bar.is_hidden() && last_state != Some(r.state) && !ev.is_final() {
                eprintln!("{}: {}", r.id, r.state.as_str());
            }
            last_state = Some(r.state);
            if ev.is_final() {
                break 'outer r.clone();
            }
        }
        // The client reports a stream cut short as an error; an empty end is treated alike.
        down_since.get_or_insert_with(Instant::now);
    };
    bar.finish_and_clear();
    if json {
        return Ok(exit::for_state(last.state));
    }
    let mut out = std::io::stdout().lock();
    match (&last.result, &last.error) {
        (Some(v), _) if last.state == errand_client::TaskState::Succeeded => {
            eprintln!("{}: succeeded", last.id);
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(v).unwrap_or_default()
            )?;
        }
        (_, Some(e)) => eprintln!(
            "{}: {} ({}: {})",
            last.id,
            last.state.as_str(),
            e.kind,
            e.message
        ),
        _ => eprintln!("{}: {}", last.id, last.state.as_str()),
    }
    Ok(exit::for_state(last.state))
}

fn is_transient(e: &Error) -> bool {
    matches!(e, Error::Transport(_) | Error::Stream(_)) || e.status() == Some(503)
}

/// A queue's pause state after `pause` or `resume`.
fn pause_state(out: &mut impl Write, json: bool, p: &QueuePause) -> Result<(), CliError> {
    if json {
        return print_json(out, p);
    }
    match p.paused_at {
        Some(at) if p.paused => writeln!(out, "queue {} paused since {at}", p.name)?,
        _ => writeln!(out, "queue {} running", p.name)?,
    }
    Ok(())
}
