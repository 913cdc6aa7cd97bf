//! `errand workflow`: submit a workflow from its JSON definition, show it, follow it to its
//! end with a progress bar, cancel it, list them. A followed workflow's outcome is the exit
//! code, as a followed task's is.

use std::{
    io::{IsTerminal, Read, Write},
    time::Duration,
};

use errand_client::{Client, StepState, Workflow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::{
    args,
    exit::{self, CliError},
    output,
};

type Res = Result<u8, CliError>;

/// How often a followed workflow is read again.
const POLL: Duration = Duration::from_millis(250);

fn print_json(out: &mut impl Write, v: &impl serde::Serialize) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    writeln!(out, "{s}")?;
    Ok(())
}

/// The exit code of an ended workflow (as a task's: failed 1, cancelled 3).
fn code(w: &Workflow) -> u8 {
    match w.state.as_str() {
        "failed" => exit::TASK_FAILED,
        "cancelled" => exit::TASK_CANCELLED,
        _ => exit::OK,
    }
}

pub(crate) async fn run(client: &Client, cmd: args::Workflow, json: bool) -> Res {
    let mut out = std::io::stdout().lock();
    match cmd {
        args::Workflow::Submit { file, wait } => {
            let text = if file == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| CliError::Usage(format!("{file}: {e}")))?
            };
            let body: Value = serde_json::from_str(&text)
                .map_err(|e| CliError::Usage(format!("{file} is not JSON: {e}")))?;
            let w = client.submit_workflow(&body).await?;
            if wait {
                drop(out);
                return follow(client, &w.id, json).await;
            }
            if json {
                print_json(&mut out, &w)?;
            } else {
                writeln!(out, "{}", w.id)?;
            }
        }
        args::Workflow::Get { id } => {
            let w = client.workflow(&id).await?;
            show(&mut out, json, &w)?;
        }
        args::Workflow::Watch { id } => {
            drop(out);
            return follow(client, &id, json).await;
        }
        args::Workflow::Cancel { id } => {
            let w = client.cancel_workflow(&id).await?;
            if json {
                print_json(&mut out, &w)?;
            } else {
                writeln!(out, "{}: cancelling", w.id)?;
            }
        }
        args::Workflow::List { limit } => {
            let page = client.workflows(limit, None).await?;
            if json {
                print_json(&mut out, &page)?;
            } else {
                let rows: Vec<Vec<String>> = page
                    .workflows
                    .iter()
                    .map(|w| {
                        vec![
                            w.id.clone(),
                            w.state.to_string(),
                            format!("{}/{}", w.ended_steps, w.steps),
                            w.created_at
                                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        ]
                    })
                    .collect();
                output::table(&mut out, &["ID", "STATE", "ENDED", "CREATED"], &rows)?;
            }
        }
    }
    Ok(exit::OK)
}

/// Each step as a row: name, state (its task's while it runs), and its error kind.
fn show(out: &mut impl Write, json: bool, w: &Workflow) -> Result<(), CliError> {
    if json {
        return print_json(out, w);
    }
    writeln!(out, "workflow {}: {}", w.id, w.state)?;
    let rows: Vec<Vec<String>> = w
        .steps
        .iter()
        .map(|s| {
            let state = match (s.state, s.task_state) {
                (StepState::Started, Some(t)) => t.as_str().to_owned(),
                (st, _) => st.as_str().to_owned(),
            };
            let after: Vec<&str> = s.after.iter().map(|d| d.step.as_str()).collect();
            vec![
                s.name.clone(),
                state,
                s.kind.clone(),
                after.join(","),
                s.error
                    .as_ref()
                    .and_then(|e| e["kind"].as_str())
                    .unwrap_or("")
                    .to_owned(),
            ]
        })
        .collect();
    output::table(out, &["STEP", "STATE", "KIND", "AFTER", "ERROR"], &rows)?;
    Ok(())
}

/// Reads the workflow until it ends, with a bar of ended steps on a terminal; prints it
/// and exits with its outcome.
async fn follow(client: &Client, id: &str, json: bool) -> Res {
    let mut w = client.workflow(id).await?;
    let bar = if json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar =
            ProgressBar::with_draw_target(Some(w.steps.len() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner:.cyan} [{bar:24.cyan/blue}] {pos}/{len} steps {wide_msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    };
    loop {
        let ended = w.steps.iter().filter(|s| s.is_ended()).count();
        bar.set_length(w.steps.len() as u64);
        bar.set_position(ended as u64);
        let running: Vec<&str> = w
            .steps
            .iter()
            .filter(|s| matches!(s.state.as_str(), "started" | "mapping"))
            .map(|s| s.name.as_str())
            .take(4)
            .collect();
        bar.set_message(running.join(" "));
        if w.is_ended() {
            break;
        }
        tokio::time::sleep(POLL).await;
        w = client.workflow(id).await?;
    }
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    show(&mut out, json, &w)?;
    Ok(code(&w))
}
