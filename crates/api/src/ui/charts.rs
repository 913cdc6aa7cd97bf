//! The overview's charts, drawn on the server as inline SVG: no chart library to vendor,
//! pin and ship, nothing to run in the browser, and a page that reads the same with
//! scripts off. Each bar or point carries a `<title>` (a tooltip, and what a screen reader
//! says), and each chart a one-line summary.

use chrono::{TimeZone, Utc};
use errand_core::store::{Bucket, History};
use maud::{Markup, html};

const W: f64 = 600.0;
const H: f64 = 150.0;
const LEFT: f64 = 58.0;
const BOTTOM: f64 = 18.0;
const TOP: f64 = 8.0;

fn minute_label(minute: i64) -> String {
    Utc.timestamp_opt(minute * 60, 0)
        .single()
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

/// `ms` as a short duration: `850 ms`, `3.2 s`, `4.5 min`.
pub(super) fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms < 3_600_000.0 {
        format!("{:.1} min", ms / 60_000.0)
    } else {
        format!("{:.1} h", ms / 3_600_000.0)
    }
}

fn bucket_start(h: &History, i: usize) -> i64 {
    let n = h.buckets.len() as i64;
    h.last_minute - (n - i as i64) * i64::from(h.width_minutes) + 1
}

fn frame(label: &str, top: &str, h: &History, class: &str, body: Markup) -> Markup {
    let first = minute_label(bucket_start(h, 0));
    html! {
        svg class=(format!("chart {class}")) viewBox=(format!("0 0 {W} {H}")) role="img"
            aria-label=(label) {
            line class="axis" x1=(LEFT) y1=(H - BOTTOM) x2=(W) y2=(H - BOTTOM) {}
            line class="axis" x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(H - BOTTOM) {}
            text class="tick" x=(LEFT - 4.0) y=(TOP + 8.0) text-anchor="end" { (top) }
            text class="tick" x=(LEFT - 4.0) y=(H - BOTTOM) text-anchor="end" { "0" }
            text class="tick" x=(LEFT) y=(H - 4.0) { (first) }
            text class="tick" x=(W) y=(H - 4.0) text-anchor="end" { "now" }
            (body)
        }
    }
}

/// Succeeded and failed attempts per minute, one stacked bar per bucket.
pub(super) fn throughput(h: &History) -> Markup {
    let per_min = f64::from(h.width_minutes);
    let rate = |b: &Bucket| {
        (
            b.succeeded as f64 / per_min,
            (b.failed + b.retrying) as f64 / per_min,
        )
    };
    let max = h
        .buckets
        .iter()
        .map(|b| {
            let (s, f) = rate(b);
            s + f
        })
        .fold(0.0, f64::max);
    let scale = if max > 0.0 {
        (H - BOTTOM - TOP) / max
    } else {
        0.0
    };
    let bw = (W - LEFT) / h.buckets.len().max(1) as f64;
    let total_ok: u64 = h.buckets.iter().map(|b| b.succeeded).sum();
    let total_failed: u64 = h.buckets.iter().map(|b| b.failed).sum();
    let total_retried: u64 = h.buckets.iter().map(|b| b.retrying).sum();
    let label = format!(
        "Throughput: {total_ok} succeeded, {total_failed} failed, {total_retried} failed attempts retried"
    );
    let body = html! {
        @for (i, b) in h.buckets.iter().enumerate() {
            @let (s, f) = rate(b);
            @if s + f > 0.0 {
                @let x = LEFT + i as f64 * bw + bw * 0.1;
                @let hs = s * scale;
                @let hf = f * scale;
                g class="bucket" {
                    title { (minute_label(bucket_start(h, i))) ": " (b.succeeded) " succeeded, "
                        (b.failed) " failed, " (b.retrying) " retried" }
                    @if hs > 0.0 {
                        rect class="bar ok" x=(x) width=(bw * 0.8) y=(H - BOTTOM - hs) height=(hs) {}
                    }
                    @if hf > 0.0 {
                        rect class="bar fail" x=(x) width=(bw * 0.8) y=(H - BOTTOM - hs - hf) height=(hf) {}
                    }
                }
            }
        }
    };
    html! {
        figure.chart-box data-total=(total_ok + total_failed + total_retried) {
            figcaption {
                "Throughput per minute · "
                span.key.ok { "succeeded " (total_ok) } " · "
                span.key.fail { "failed " (total_failed + total_retried) }
            }
            (frame(&label, &format!("{max:.1}/min"), h, "throughput", body))
        }
    }
}

/// Run-time percentiles (p50, p95, p99) per bucket on a log scale.
pub(super) fn run_time(h: &History) -> Markup {
    let points: Vec<(usize, [f64; 3])> = h
        .buckets
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            Some((
                i,
                [b.percentile(0.5)?, b.percentile(0.95)?, b.percentile(0.99)?],
            ))
        })
        .collect();
    let mut all = Bucket::default();
    for b in &h.buckets {
        for (k, n) in &b.run_time {
            *all.run_time.entry(*k).or_default() += n;
        }
    }
    let max = points.iter().map(|(_, p)| p[2]).fold(1.0, f64::max) * 1.2;
    let ly = |ms: f64| {
        let frac = (ms + 1.0).log10() / (max + 1.0).log10();
        H - BOTTOM - frac * (H - BOTTOM - TOP)
    };
    let bw = (W - LEFT) / h.buckets.len().max(1) as f64;
    let x = |i: usize| LEFT + (i as f64 + 0.5) * bw;
    let summary = match (
        all.percentile(0.5),
        all.percentile(0.95),
        all.percentile(0.99),
    ) {
        (Some(a), Some(b), Some(c)) => format!(
            "p50 {} · p95 {} · p99 {}",
            duration(a),
            duration(b),
            duration(c)
        ),
        _ => "no finished attempts".into(),
    };
    let body = html! {
        @for (s, name) in [(0, "p50"), (1, "p95"), (2, "p99")] {
            @if points.len() > 1 {
                polyline class=(format!("line {name}")) fill="none" points=(
                    points.iter().map(|(i, p)| format!("{:.1},{:.1}", x(*i), ly(p[s]))).collect::<Vec<_>>().join(" ")
                ) {}
            }
            @for (i, p) in &points {
                circle class=(format!("dot {name}")) cx=(format!("{:.1}", x(*i))) cy=(format!("{:.1}", ly(p[s]))) r="2.5" {
                    title { (minute_label(bucket_start(h, *i))) " " (name) ": " (duration(p[s])) }
                }
            }
        }
    };
    html! {
        figure.chart-box data-points=(points.len()) {
            figcaption {
                "Run time · "
                span.key.p50 { "p50" } " " span.key.p95 { "p95" } " " span.key.p99 { "p99" }
                " · " (summary)
            }
            (frame(&format!("Run time percentiles: {summary}"), &duration(max), h, "runtime", body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(buckets: Vec<Bucket>) -> History {
        History {
            last_minute: 29_000_000,
            width_minutes: 1,
            buckets,
        }
    }

    #[test]
    fn bars_and_points_appear_only_where_there_is_data() {
        let empty = history(vec![Bucket::default(); 60]);
        let t = throughput(&empty).into_string();
        assert!(!t.contains("class=\"bar"), "{t}");
        assert!(t.contains("data-total=\"0\""));
        assert!(
            run_time(&empty)
                .into_string()
                .contains("no finished attempts")
        );

        let mut b = Bucket {
            succeeded: 30,
            failed: 2,
            ..Default::default()
        };
        b.run_time.insert(40, 32);
        let mut buckets = vec![Bucket::default(); 60];
        buckets[58] = b.clone();
        buckets[59] = b;
        let h = history(buckets);
        let t = throughput(&h).into_string();
        assert_eq!(t.matches("class=\"bar ok\"").count(), 2, "{t}");
        assert_eq!(t.matches("class=\"bar fail\"").count(), 2);
        assert!(t.contains("succeeded 60"));
        let r = run_time(&h).into_string();
        assert!(
            r.contains("data-points=\"2\"") && r.contains("polyline"),
            "{r}"
        );
        assert!(r.contains("p50 1.1 s"), "{r}");
    }
}
