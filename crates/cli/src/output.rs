//! Text output for people: key/value blocks and aligned tables. (`--output json` bypasses
//! all of this and prints the API's JSON.)

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use errand_client::{Schedule, TaskRecord, WebhookState};

pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_else(|| "-".into())
}

/// Columns padded to their widest cell; the last column is not padded.
pub(crate) fn table(
    out: &mut impl Write,
    head: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: Vec<&str>| -> std::io::Result<()> {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, head.to_vec())?;
    for r in rows {
        line(out, r.iter().map(String::as_str).collect())?;
    }
    Ok(())
}

pub(crate) fn task_row(r: &TaskRecord) -> Vec<String> {
    vec![
        r.id.to_string(),
        r.state.as_str().to_owned(),
        r.kind.clone(),
        r.queue.clone(),
        format!("{}/{}", r.attempt, r.max_attempts),
        time(r.created_at),
    ]
}

pub(crate) const TASK_HEAD: [&str; 6] = ["ID", "STATE", "KIND", "QUEUE", "ATTEMPT", "CREATED"];

pub(crate) fn record(out: &mut impl Write, r: &TaskRecord) -> std::io::Result<()> {
    let mut rows: Vec<(&str, String)> = vec![
        ("id", r.id.to_string()),
        ("kind", r.kind.clone()),
        ("state", r.state.as_str().to_owned()),
        ("queue", r.queue.clone()),
        ("attempt", format!("{}/{}", r.attempt, r.max_attempts)),
    ];
    if let Some(p) = &r.progress {
        let msg = p.message.as_deref().unwrap_or("");
        rows.push((
            "progress",
            format!("{}% {msg}", p.percent).trim_end().into(),
        ));
    }
    if r.cancel_requested {
        rows.push(("cancel", "requested".into()));
    }
    rows.push(("created", time(r.created_at)));
    if r.scheduled_for.is_some() {
        rows.push(("scheduled", opt_time(r.scheduled_for)));
    }
    if r.started_at.is_some() {
        rows.push(("started", opt_time(r.started_at)));
    }
    if r.finished_at.is_some() {
        rows.push(("finished", opt_time(r.finished_at)));
    }
    if r.next_attempt_at.is_some() {
        rows.push(("next try", opt_time(r.next_attempt_at)));
    }
    if let Some(w) = &r.worker {
        rows.push(("worker", w.clone()));
    }
    if let Some(s) = &r.schedule_id {
        rows.push(("schedule", s.clone()));
    }
    rows.push(("payload", r.payload.to_string()));
    if let Some(v) = &r.result {
        rows.push(("result", v.to_string()));
    }
    if let Some(e) = &r.error {
        rows.push(("error", format!("{}: {}", e.kind, e.message)));
    }
    if let Some(cb) = &r.callback {
        rows.push(("callback", cb.url.clone()));
    }
    if let Some(w) = &r.webhook {
        let mut v = format!(
            "{} {} ({} attempt{}",
            w.event.as_str(),
            match w.state {
                WebhookState::Pending => "pending",
                WebhookState::Delivered => "delivered",
                WebhookState::Failed => "failed",
            },
            w.attempts,
            if w.attempts == 1 { "" } else { "s" }
        );
        if let Some(e) = &w.last_error {
            v.push_str(&format!("; last: {e}"));
        }
        if w.next_attempt_at.is_some() {
            v.push_str(&format!("; next {}", opt_time(w.next_attempt_at)));
        }
        v.push(')');
        rows.push(("webhook", v));
    }
    for (k, v) in rows {
        writeln!(out, "{k:<10}{v}")?;
    }
    Ok(())
}

pub(crate) const SCHEDULE_HEAD: [&str; 7] =
    ["ID", "ENABLED", "CRON", "TZ", "KIND", "QUEUE", "NEXT RUN"];

pub(crate) fn schedule_row(s: &Schedule) -> Vec<String> {
    vec![
        s.id.to_string(),
        if s.enabled { "yes" } else { "no" }.into(),
        s.cron.clone(),
        s.timezone.clone(),
        s.kind.clone(),
        s.queue.clone(),
        opt_time(s.next_run_at),
    ]
}
