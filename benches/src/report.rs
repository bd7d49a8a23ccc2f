//! One figure per workload and run; medians over runs; the printed table.

/// What one run of one workload measured. Absent fields print as `-`.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    pub jobs_per_s: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub rss_mb: Option<f64>,
    /// A worker's start-up before its first job (schema check, first rescue pass).
    pub startup_ms: Option<f64>,
}

/// A workload's name and its runs.
#[derive(Debug)]
pub struct Row {
    pub workload: String,
    pub runs: Vec<Figure>,
}

impl Row {
    pub fn median(&self) -> Figure {
        let field = |f: fn(&Figure) -> Option<f64>| {
            median(&self.runs.iter().filter_map(f).collect::<Vec<_>>())
        };
        Figure {
            jobs_per_s: field(|f| f.jobs_per_s),
            p50_ms: field(|f| f.p50_ms),
            p99_ms: field(|f| f.p99_ms),
            rss_mb: field(|f| f.rss_mb),
            startup_ms: field(|f| f.startup_ms),
        }
    }
}

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn print_table(rows: &[Row], runs: usize) {
    let width = rows
        .iter()
        .map(|r| r.workload.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!();
    println!(
        "{:<width$}  {:>12}  {:>8}  {:>8}  {:>7}  {:>8}   (median of {runs} run{})",
        "workload",
        "jobs/s",
        "p50 ms",
        "p99 ms",
        "RSS MB",
        "start ms",
        if runs == 1 { "" } else { "s" }
    );
    println!("{}", "-".repeat(width + 55));
    for row in rows {
        let m = row.median();
        println!(
            "{:<width$}  {:>12}  {:>8}  {:>8}  {:>7}  {:>8}",
            row.workload,
            show(m.jobs_per_s, 0),
            show(m.p50_ms, 2),
            show(m.p99_ms, 2),
            show(m.rss_mb, 1),
            show(m.startup_ms, 0),
        );
    }
}

fn show(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}
