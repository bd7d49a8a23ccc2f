//! Per-process metrics: what this process's workers did, counted from their events
//! ([`crate::Worker::on_event`]) and served with the table's gauges by `work --metrics-bind`
//! (and by `start --metrics-bind` for every worker of a pool at once).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use super::metrics::label;
use crate::worker::{Event, JobOutcome};

/// Upper bounds of the job duration histogram, in seconds.
const DURATION_BOUNDS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0,
];
/// Upper bounds of the claim size histogram.
const CLAIM_BOUNDS: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative; the last is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }
    fn observe(&mut self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum += value;
        self.count += 1;
    }
    /// `NAME_bucket{LABELS,le=".."}` lines (cumulative), `_sum` and `_count`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, n) in self.counts.iter().enumerate() {
            cumulative += n;
            let le = self
                .bounds
                .get(i)
                .map_or("+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Counts {
    attempts: BTreeMap<(String, &'static str), u64>,
    durations: BTreeMap<String, Histogram>,
    claims: Option<Histogram>,
}

/// What this process's workers did: attempts by job name and outcome, durations by job
/// name, claim sizes. Feed it every event of every worker; render it for `/metrics`.
#[derive(Debug, Default)]
pub struct ProcessMetrics {
    counts: Mutex<Counts>,
}

impl ProcessMetrics {
    /// Counts one worker event.
    pub fn record(&self, event: &Event) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::JobFinished {
                name,
                outcome,
                runtime,
                ..
            } => {
                *counts
                    .attempts
                    .entry((name.clone(), outcome.as_str()))
                    .or_insert(0) += 1;
                if !matches!(outcome, JobOutcome::Lost | JobOutcome::Interrupted) {
                    counts
                        .durations
                        .entry(name.clone())
                        .or_insert_with(|| Histogram::new(&DURATION_BOUNDS))
                        .observe(runtime.as_secs_f64());
                }
            }
            Event::Claimed { count } => counts
                .claims
                .get_or_insert_with(|| Histogram::new(&CLAIM_BOUNDS))
                .observe(*count as f64),
            _ => {}
        }
    }

    /// The text exposition of these counts.
    pub fn render(&self, out: &mut String) {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP dj_job_attempts_total Attempts this process's workers ended, by job name and outcome.\n");
        out.push_str("# TYPE dj_job_attempts_total counter\n");
        for ((name, outcome), n) in &counts.attempts {
            let _ = writeln!(
                out,
                "dj_job_attempts_total{{name=\"{}\",outcome=\"{outcome}\"}} {n}",
                label(name)
            );
        }
        out.push_str("# HELP dj_job_duration_seconds How long attempts ran, by job name.\n");
        out.push_str("# TYPE dj_job_duration_seconds histogram\n");
        for (name, histogram) in &counts.durations {
            histogram.render(
                out,
                "dj_job_duration_seconds",
                &format!("name=\"{}\"", label(name)),
            );
        }
        out.push_str("# HELP dj_claim_batch_size Jobs taken per claim.\n");
        out.push_str("# TYPE dj_claim_batch_size histogram\n");
        counts
            .claims
            .clone()
            .unwrap_or_else(|| Histogram::new(&CLAIM_BOUNDS))
            .render(out, "dj_claim_batch_size", "");
    }
}

/// Merges the `/metrics` texts of a pool's workers into one: counters and histograms are
/// summed series by series; gauges (the table's, the same from every worker) are taken from
/// the first text that has them. HELP and TYPE lines are kept once, families in the order
/// first seen.
pub fn merge_exposition(texts: &[String]) -> String {
    // family → (help/type lines, kind, series in order, value by series)
    struct Family {
        header: Vec<String>,
        kind: String,
        order: Vec<String>,
        values: BTreeMap<String, f64>,
    }
    let mut families: Vec<(String, Family)> = Vec::new();
    for text in texts {
        let mut current: Option<usize> = None;
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
            {
                let name = rest.split(' ').next().unwrap_or("").to_owned();
                let at = match families.iter().position(|(n, _)| *n == name) {
                    Some(at) => at,
                    None => {
                        families.push((
                            name.clone(),
                            Family {
                                header: Vec::new(),
                                kind: String::new(),
                                order: Vec::new(),
                                values: BTreeMap::new(),
                            },
                        ));
                        families.len() - 1
                    }
                };
                let family = &mut families[at].1;
                if !family.header.iter().any(|h| h == line) {
                    family.header.push(line.to_owned());
                }
                if let Some(kind) = line
                    .strip_prefix("# TYPE ")
                    .and_then(|r| r.split(' ').nth(1))
                {
                    family.kind = kind.to_owned();
                }
                current = Some(at);
                continue;
            }
            let (Some(at), Some((series, value))) = (current, line.rsplit_once(' ')) else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let family = &mut families[at].1;
            let additive = family.kind == "counter" || family.kind == "histogram";
            match family.values.get_mut(series) {
                Some(total) if additive => *total += value,
                Some(_) => {}
                None => {
                    family.order.push(series.to_owned());
                    family.values.insert(series.to_owned(), value);
                }
            }
        }
    }
    let mut out = String::new();
    for (_, family) in &families {
        for line in &family.header {
            out.push_str(line);
            out.push('\n');
        }
        for series in &family.order {
            let _ = writeln!(out, "{series} {}", family.values[series]);
        }
    }
    out
}
