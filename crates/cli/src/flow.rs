//! `errand limits` and `errand bulk`: a queue's flow control and its bulk actions
//! (docs/flow-control.md).

use std::{
    io::{IsTerminal, Write},
    time::Duration,
};

use errand_client::{BulkJob, Client, QueueLimits, Rate, SetLimits, StartBulk};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{
    args,
    exit::{self, CliError},
};

type Res = Result<u8, CliError>;

fn print_json(out: &mut impl Write, v: &impl serde::Serialize) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    writeln!(out, "{s}")?;
    Ok(())
}

fn rate_text(r: &Rate) -> String {
    format!("{}/{}ms (burst {})", r.count, r.period_ms, r.burst)
}

/// Shows a queue's limits, or sets them when any flag is given.
pub(crate) async fn limits(
    client: &Client,
    l: args::Limits,
    json: bool,
    out: &mut impl Write,
) -> Res {
    let setting = l.clear || l.rate.is_some() || !l.kind_rate.is_empty() || l.per_key.is_some();
    let q: QueueLimits = if setting {
        let limits = SetLimits {
            rate: l.rate.map(|(count, period_ms)| Rate {
                count,
                period_ms,
                burst: l.burst.unwrap_or(1),
            }),
            kinds: l
                .kind_rate
                .into_iter()
                .map(|(k, count, period_ms, burst)| {
                    (
                        k,
                        Rate {
                            count,
                            period_ms,
                            burst,
                        },
                    )
                })
                .collect(),
            per_key: l.per_key,
        };
        client.set_limits(&l.queue, &limits).await?
    } else {
        client.limits(&l.queue).await?
    };
    if json {
        print_json(out, &q)?;
        return Ok(exit::OK);
    }
    writeln!(out, "queue {}", q.queue)?;
    let none = "none".to_owned();
    writeln!(
        out,
        "  rate      {}",
        q.limits.rate.as_ref().map_or(none.clone(), rate_text)
    )?;
    for (k, r) in &q.limits.kinds {
        writeln!(out, "  rate {k:<5} {}", rate_text(r))?;
    }
    writeln!(
        out,
        "  per key   {}",
        q.limits.per_key.map_or(none, |n| n.to_string())
    )?;
    writeln!(
        out,
        "held back: {} throttled, {} waiting for their key",
        q.held.throttled, q.held.waiting_for_key
    )?;
    for k in &q.held.keys {
        writeln!(out, "  {:<24} {}", k.key, k.waiting)?;
    }
    Ok(exit::OK)
}

/// Starts a bulk action and, unless told not to, follows it to its end.
pub(crate) async fn bulk(client: &Client, b: args::Bulk, json: bool) -> Res {
    let start = StartBulk {
        action: b.action,
        state: b.state.map(|s| s.as_str().to_owned()),
        kind: b.kind,
        error_kind: b.error_kind,
    };
    let mut job = client.start_bulk(&b.queue, &start).await?;
    let mut out = std::io::stdout().lock();
    if b.no_wait {
        if json {
            print_json(&mut out, &job)?;
        } else {
            writeln!(out, "{}", job.id)?;
        }
        return Ok(exit::OK);
    }
    let bar = if json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(Some(job.total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner:.cyan} [{bar:24.cyan/blue}] {pos}/{len} {wide_msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    };
    while job.status == "running" {
        tokio::time::sleep(Duration::from_millis(200)).await;
        job = client.bulk(&job.queue, &job.id).await?;
        bar.set_length(job.total.max(job.examined));
        bar.set_position(job.examined);
        bar.set_message(format!(
            "{} {}, {} skipped",
            job.done, job.action, job.skipped
        ));
    }
    bar.finish_and_clear();
    if json {
        print_json(&mut out, &job)?;
    } else {
        summary(&mut out, &job)?;
    }
    Ok(if job.status == "done" {
        exit::OK
    } else {
        exit::INTERNAL
    })
}

fn summary(out: &mut impl Write, j: &BulkJob) -> Result<(), CliError> {
    writeln!(
        out,
        "bulk {} of {} tasks in queue {}: {} — {} examined, {} matched, {} done, {} skipped{}",
        j.action,
        j.state.as_str(),
        j.queue,
        j.status,
        j.examined,
        j.matched,
        j.done,
        j.skipped,
        j.error
            .as_ref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::args::parse_rate;

    #[test]
    fn rates_read_with_their_unit() {
        assert_eq!(parse_rate("500/1s"), Ok((500, 1000)));
        assert_eq!(parse_rate("10/250ms"), Ok((10, 250)));
        assert_eq!(parse_rate("100/m"), Ok((100, 60_000)));
        assert_eq!(parse_rate("3/2h"), Ok((3, 7_200_000)));
        for bad in ["500", "x/1s", "5/1d", "5/"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
