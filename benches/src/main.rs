//! `dj-bench`: dj's benchmark program. It creates its own PostgreSQL database, runs each
//! workload on a fresh `delayed_jobs` table and prints a table of medians over `--runs`. The
//! `sqlite-*` workloads use a fresh SQLite file per run instead, and need no PostgreSQL.
//! Benchmarks are programs, not tests: nothing here asserts a time.
//!
//! ```text
//! cargo run --release -p dj-benches --bin dj-bench -- [--runs 5] [--smoke] [--url URL] [--only KEYS]
//! ```

mod jobs;
mod report;
mod setup;
mod storage;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use report::{Figure, Row};
use setup::{BoxError, Synchronous};
use workloads::WorkerSettings;

#[derive(Debug, Parser)]
#[command(
    name = "dj-bench",
    about = "dj's PostgreSQL, MySQL and SQLite benchmarks; prints medians of --runs"
)]
struct Args {
    /// The database to create and use (its tables are dropped and recreated): PostgreSQL, or
    /// MySQL / MariaDB with a `mysql://` URL.
    #[arg(
        long,
        env = "DJ_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/dj_bench"
    )]
    url: String,
    /// Tiny sizes: every workload in a few seconds (for CI; the figures mean nothing).
    #[arg(long)]
    smoke: bool,
    /// Repetitions of each workload; the table shows medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Executor threads of the benchmarked worker.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Jobs claimed beyond the running ones (the claim batch when work is plentiful).
    #[arg(long, default_value_t = 1000)]
    read_ahead: usize,
    /// Work off without the fast lane (every job claimed the ordinary way).
    #[arg(long)]
    no_fast_lane: bool,
    /// Only these workloads (comma-separated): workoff, workoff-default, workoff-limited, workoff-keyed, workoff-rated, workoff-fair, workoff-backlog, workflow, waiting, unique, pickup, bulk,
    /// single, async-single, async-workoff, rss, logged, sqlite-enqueue, sqlite-workoff,
    /// pgbouncer (with --pgbouncer-url), horizon, soak (only when named, or with --smoke),
    /// results, transactional.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also print `RESULT dj WORKLOAD VALUE UNIT NOTE` lines for the workloads the peers
    /// benchmark compares (benches/peers/run.sh reads them).
    #[arg(long)]
    results: bool,
    /// A PgBouncer in transaction pooling in front of `--url`'s database, for the `pgbouncer`
    /// workload (skipped without it).
    #[arg(long, env = "DJ_BENCH_PGBOUNCER_URL")]
    pgbouncer_url: Option<String>,
    /// Where the SQLite workloads create their files (a new directory per run, removed after).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    sqlite_dir: PathBuf,
    /// The `soak` workload's enqueue rate, jobs per second.
    #[arg(long, default_value_t = 5000)]
    soak_rate: u64,
    /// The `soak` workload's length in minutes (default 10; 15 s with --smoke).
    #[arg(long)]
    soak_minutes: Option<f64>,
    /// The `soak` worker's `reindex_every`, in seconds (off unless given).
    #[arg(long)]
    soak_reindex_every: Option<f64>,
    /// Internal: be the worker process of the `rss` and `logged` workloads.
    #[arg(long, hide = true)]
    child_worker: Option<u64>,
    #[arg(long, hide = true)]
    child_log: bool,
}

/// How big each workload is.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    workoff: u64,
    waiting_small: u64,
    waiting_large: u64,
    waiting_sample: u64,
    pickup: usize,
    pickup_gap: Duration,
    bulk: u64,
    single: u64,
    rss: u64,
    sqlite: u64,
    /// The backlog `workoff-backlog` works `workoff` jobs off the front of, and the small
    /// table it compares with.
    backlog: u64,
    backlog_small: u64,
    /// Jobs per round of `horizon` (five rounds).
    horizon: u64,
    /// How long `soak` runs and how often it prints, unless `--soak-minutes` says otherwise.
    soak_length: Duration,
    soak_interval: Duration,
    /// Steps of the `workflow` workload's workflows.
    workflow: u64,
}

const FULL: Sizes = Sizes {
    workoff: 100_000,
    waiting_small: 10_000,
    waiting_large: 1_000_000,
    waiting_sample: 10_000,
    pickup: 200,
    pickup_gap: Duration::from_millis(20),
    bulk: 100_000,
    single: 2_000,
    rss: 100_000,
    sqlite: 10_000,
    backlog: 1_000_000,
    backlog_small: 110_000,
    horizon: 50_000,
    soak_length: Duration::from_secs(600),
    soak_interval: Duration::from_secs(60),
    workflow: 20_000,
};

const SMOKE: Sizes = Sizes {
    workoff: 2_000,
    waiting_small: 500,
    waiting_large: 5_000,
    waiting_sample: 500,
    pickup: 10,
    pickup_gap: Duration::from_millis(20),
    bulk: 2_000,
    single: 50,
    rss: 1_000,
    sqlite: 200,
    backlog: 20_000,
    backlog_small: 2_200,
    horizon: 1_000,
    soak_length: Duration::from_secs(15),
    soak_interval: Duration::from_secs(5),
    workflow: 500,
};

/// Rounds of the `horizon` workload.
const HORIZON_ROUNDS: usize = 5;

/// The workloads `--only` accepts; those that start with `sqlite-` need no PostgreSQL.
const WORKLOADS: &[&str] = &[
    "workoff",
    "workoff-default",
    "workoff-limited",
    "workoff-keyed",
    "workoff-rated",
    "workoff-fair",
    "workoff-backlog",
    "waiting",
    "pickup",
    "bulk",
    "single",
    "unique",
    "async-single",
    "async-workoff",
    "rss",
    "logged",
    "sqlite-enqueue",
    "sqlite-workoff",
    "pgbouncer",
    "horizon",
    "soak",
    "results",
    "transactional",
    "workflow",
];

/// Concurrency of the memory workload, as the issue states it.
const RSS_CONCURRENCY: usize = 8;

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.child_worker {
        Some(n) => workloads::child_main(&args.url, n, settings(&args), args.child_log),
        None => bench(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dj-bench: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn settings(args: &Args) -> WorkerSettings {
    WorkerSettings {
        concurrency: args.concurrency.max(1),
        read_ahead: args.read_ahead,
        listed: false,
        fast_lane: !args.no_fast_lane,
    }
}

fn bench(args: &Args) -> Result<(), BoxError> {
    let sizes = if args.smoke { SMOKE } else { FULL };
    let runs = if args.smoke { 1 } else { args.runs.max(1) };
    let url = args.url.as_str();
    let worker = settings(args);
    if let Some(unknown) = args.only.iter().find(|o| !WORKLOADS.contains(&o.as_str())) {
        return Err(format!(
            "unknown workload `{unknown}`; expected one of: {}",
            WORKLOADS.join(", ")
        )
        .into());
    }
    let wanted = |key: &str| args.only.is_empty() || args.only.iter().any(|o| o == key);
    let postgres = WORKLOADS
        .iter()
        .any(|key| !key.starts_with("sqlite-") && wanted(key));

    println!(
        "dj-bench: {runs} run(s), worker concurrency {} read_ahead {}",
        worker.concurrency, worker.read_ahead
    );
    if postgres {
        setup::create_database(url)?;
        let server = if setup::mysql_url(url).is_some() {
            "MySQL"
        } else {
            "PostgreSQL"
        };
        println!("{server}: {url}");
        for (name, value) in setup::server_settings(url)? {
            println!("  {name} = {value}");
        }
    }
    if wanted("sqlite-enqueue") || wanted("sqlite-workoff") {
        println!("SQLite: files under {}", args.sqlite_dir.display());
    }
    let mut rows: Vec<Row> = Vec::new();
    let c = worker.concurrency;
    let ra = worker.read_ahead;

    if wanted("workoff") {
        measure(
            &mut rows,
            runs,
            format!("work-off {} (c={c}, read_ahead={ra})", sizes.workoff),
            &mut || workloads::workoff(url, sizes.workoff, worker),
        )?;
    }
    if wanted("workoff-default") {
        measure(
            &mut rows,
            runs,
            format!(
                "work-off {} (defaults: c=1, paced read-ahead)",
                sizes.workoff
            ),
            &mut || workloads::workoff_default(url, sizes.workoff),
        )?;
    }
    if wanted("workoff-limited") {
        measure(
            &mut rows,
            runs,
            format!(
                "work-off {} of a limited queue (c={c}, read_ahead={ra})",
                sizes.workoff
            ),
            &mut || workloads::workoff_limited(url, sizes.workoff, worker),
        )?;
    }
    if wanted("workoff-keyed") {
        measure(
            &mut rows,
            runs,
            format!(
                "work-off {} under per-key limits, 100 keys (c={c}, read_ahead={ra})",
                sizes.workoff
            ),
            &mut || workloads::workoff_keyed(url, sizes.workoff, worker),
        )?;
    }
    if wanted("workoff-rated") {
        measure(
            &mut rows,
            runs,
            format!(
                "work-off {} under per-key rates, 100 keys, 10 queues (c={c}, read_ahead={ra})",
                sizes.workoff
            ),
            &mut || workloads::workoff_rated(url, sizes.workoff, worker),
        )?;
    }
    if wanted("workoff-fair") {
        measure(
            &mut rows,
            runs,
            format!(
                "work-off {} under fairness keys, 100 tenants, 10 queues (c={c}, read_ahead={ra})",
                sizes.workoff
            ),
            &mut || workloads::workoff_fair(url, sizes.workoff, worker),
        )?;
    }
    if wanted("workflow") {
        let n = sizes.workflow;
        measure_each(
            &mut rows,
            runs,
            vec![
                format!("enqueue_many {n} plain jobs"),
                format!("work-off {n} plain jobs (c={c}, read_ahead={ra})"),
                format!("enqueue a workflow of {n} independent steps"),
                format!("work-off a workflow of {n} independent steps (c={c}, read_ahead={ra})"),
                format!("enqueue a fan-out workflow, 1 then {} after it", n - 1),
                format!("work-off a fan-out workflow of {n} steps (c={c}, read_ahead={ra})"),
            ],
            &mut || workloads::workflow(url, n, worker),
        )?;
    }
    if wanted("workoff-backlog") {
        let (big, small, n) = (sizes.backlog, sizes.backlog_small, sizes.workoff);
        // (name, table size, every table analyzed, the worker lists the 20 queues)
        let cases = [
            (format!("work-off {n} of {small} in 20 queues, every table analyzed (c={c}, read_ahead={ra})"), small, true, false),
            (format!("work-off {n} of a {big} backlog in 20 queues, only delayed_jobs analyzed (c={c}, read_ahead={ra})"), big, false, false),
            (format!("work-off {n} of a {big} backlog, worker lists the 20 queues (c={c}, read_ahead={ra})"), big, false, true),
        ];
        for (name, total, analyze_all, listed) in cases {
            measure(&mut rows, runs, name, &mut || {
                workloads::workoff_backlog(url, total, n, worker, analyze_all, listed)
            })?;
        }
    }
    if wanted("waiting") {
        measure(
            &mut rows,
            runs,
            format!(
                "work-off {} of {} waiting",
                sizes.waiting_sample, sizes.waiting_small
            ),
            &mut || {
                workloads::waiting(
                    url,
                    sizes.waiting_small,
                    sizes.waiting_sample,
                    worker,
                    false,
                )
            },
        )?;
        let mut first = true;
        measure(
            &mut rows,
            runs,
            format!(
                "work-off {} of {} waiting",
                sizes.waiting_sample, sizes.waiting_large
            ),
            &mut || {
                let reuse = !std::mem::take(&mut first);
                workloads::waiting(
                    url,
                    sizes.waiting_large,
                    sizes.waiting_sample,
                    worker,
                    reuse,
                )
            },
        )?;
    }
    if wanted("pickup") {
        measure_each(
            &mut rows,
            runs,
            vec![
                format!(
                    "pickup latency, {} jobs {} ms apart",
                    sizes.pickup,
                    sizes.pickup_gap.as_millis()
                ),
                "  (its enqueue calls: 1-row INSERT + commit)".to_owned(),
            ],
            &mut || workloads::pickup(url, sizes.pickup, sizes.pickup_gap, worker),
        )?;
    }
    if wanted("transactional") {
        let n = sizes.workoff / 5;
        let plain = |lane: &str| {
            format!("work-off {n}, each job inserting a row, then completed by the worker ({lane})")
        };
        measure(&mut rows, runs, plain("fast lane"), &mut || {
            workloads::effects_workoff(url, n, worker, false)
        })?;
        let no_lane = WorkerSettings {
            fast_lane: false,
            ..worker
        };
        measure(&mut rows, runs, plain("ordinary claim"), &mut || {
            workloads::effects_workoff(url, n, no_lane, false)
        })?;
        measure(
            &mut rows,
            runs,
            format!("work-off {n}, each job inserting a row and completing in its transaction"),
            &mut || workloads::effects_workoff(url, n, worker, true),
        )?;
    }
    if wanted("results") {
        measure(
            &mut rows,
            runs,
            format!(
                "work-off {}, each job recording a result (c={c}, read_ahead={ra})",
                sizes.workoff
            ),
            &mut || workloads::results_workoff(url, sizes.workoff, worker),
        )?;
        measure(
            &mut rows,
            runs,
            format!(
                "enqueue_and_wait round trip, {} jobs one at a time (NOTIFY)",
                sizes.pickup
            ),
            &mut || workloads::result_wait(&setup::fresh_table(url)?, sizes.pickup, worker),
        )?;
        measure(
            &mut rows,
            runs,
            format!(
                "sqlite: enqueue_and_wait round trip, {} jobs one at a time (polling)",
                sizes.pickup
            ),
            &mut || {
                let file = setup::SqliteFile::new(&args.sqlite_dir, Synchronous::Normal)?;
                workloads::result_wait(&file.db, sizes.pickup, worker)
            },
        )?;
    }
    if wanted("bulk") {
        measure(
            &mut rows,
            runs,
            format!("enqueue_many {}", sizes.bulk),
            &mut || workloads::bulk(url, sizes.bulk),
        )?;
        // The server's own floor is PostgreSQL SQL.
        if setup::mysql_url(url).is_none() {
            measure(
                &mut rows,
                runs,
                format!("  (server alone: INSERT .. SELECT {})", sizes.bulk),
                &mut || workloads::bulk_floor(url, sizes.bulk),
            )?;
        }
    }
    if wanted("single") {
        measure_each(
            &mut rows,
            runs,
            vec![
                format!("raw prepared INSERT, 1/tx, {}", sizes.single),
                format!("enqueue, 1 job/tx, {}", sizes.single),
            ],
            &mut || workloads::single_vs_raw(url, sizes.single),
        )?;
    }
    if wanted("unique") {
        measure_each(
            &mut rows,
            runs,
            vec![
                format!("enqueue, 1 job/tx, {}", sizes.single),
                format!("unique enqueue, new key, 1 job/tx, {}", sizes.single),
                format!("unique enqueue, duplicate, 1 job/tx, {}", sizes.single),
            ],
            &mut || workloads::unique_enqueue(url, sizes.single),
        )?;
    }
    if wanted("async-single") {
        measure_each(
            &mut rows,
            runs,
            vec![
                format!("enqueue (sync, reference), 1 job/tx, {}", sizes.single),
                format!("enqueue_async(&db) from tokio, {}", sizes.single),
                format!(
                    "enqueue_async(&mut sqlx tx), BEGIN+COMMIT, {}",
                    sizes.single
                ),
            ],
            &mut || workloads::single_async(url, sizes.single),
        )?;
    }
    if wanted("async-workoff") {
        measure(
            &mut rows,
            runs,
            format!("work-off {} async (c={c}, read_ahead={ra})", sizes.workoff),
            &mut || workloads::workoff_async(url, sizes.workoff, worker),
        )?;
    }
    let rss_worker = WorkerSettings {
        concurrency: RSS_CONCURRENCY,
        ..worker
    };
    if wanted("rss") {
        measure(
            &mut rows,
            runs,
            format!(
                "worker process c={RSS_CONCURRENCY}, {} jobs, no log",
                sizes.rss
            ),
            &mut || workloads::child(url, sizes.rss, rss_worker, false),
        )?;
    }
    if wanted("logged") {
        measure(
            &mut rows,
            runs,
            format!(
                "worker process c={RSS_CONCURRENCY}, {} jobs, CLI log",
                sizes.rss
            ),
            &mut || workloads::child(url, sizes.rss, rss_worker, true),
        )?;
    }

    if wanted("pgbouncer") {
        match &args.pgbouncer_url {
            Some(pooled) => measure_each(
                &mut rows,
                runs,
                ["direct", "PgBouncer transaction pool"]
                    .map(|via| format!("enqueue, 1 job/tx, {} ({via})", sizes.single))
                    .into_iter()
                    .chain(
                        ["direct", "PgBouncer transaction pool"]
                            .map(|via| format!("enqueue_many {} ({via})", sizes.bulk)),
                    )
                    .chain(["direct", "PgBouncer transaction pool"].map(|via| {
                        format!(
                            "work-off {} (c={c}, read_ahead={ra}) ({via})",
                            sizes.workoff
                        )
                    }))
                    .collect(),
                &mut || {
                    workloads::pgbouncer(
                        url,
                        pooled,
                        (sizes.single, sizes.bulk, sizes.workoff),
                        worker,
                    )
                },
            )?,
            None if args.only.iter().any(|o| o == "pgbouncer") => {
                return Err("the `pgbouncer` workload needs --pgbouncer-url".into())
            }
            None => println!("pgbouncer: skipped (no --pgbouncer-url)"),
        }
    }

    if wanted("horizon") {
        let n = sizes.horizon;
        for spread in storage::Spread::ALL {
            for held in [true, false] {
                let what = horizon_name(spread, held);
                measure_each(
                    &mut rows,
                    runs,
                    (1..=HORIZON_ROUNDS)
                        .map(|r| format!("{what}: round {r} of {n} (c={c}, read_ahead={ra})"))
                        .collect(),
                    &mut || storage::horizon(url, (HORIZON_ROUNDS, n), spread, worker, held),
                )?;
            }
        }
    }
    // Minutes long: only when asked for by name (or, a few seconds long, in the smoke run).
    if args.smoke || args.only.iter().any(|o| o == "soak") {
        let plan = storage::SoakPlan {
            rate: args.soak_rate.max(1),
            length: args
                .soak_minutes
                .map_or(sizes.soak_length, |m| Duration::from_secs_f64(m * 60.0)),
            interval: sizes.soak_interval,
            reindex_every: args.soak_reindex_every.map(Duration::from_secs_f64),
        };
        measure(
            &mut rows,
            1,
            format!(
                "soak {}/s for {:.0} s, last interval (c={c}, read_ahead={ra}{})",
                plan.rate,
                plan.length.as_secs_f64(),
                plan.reindex_every.map_or(String::new(), |e| format!(
                    ", reindex every {:.0} s",
                    e.as_secs_f64()
                ))
            ),
            &mut || storage::soak(url, plan, worker),
        )?;
    }

    let dir = args.sqlite_dir.as_path();
    let n = sizes.sqlite;
    let each = |name: &str| Synchronous::BOTH.map(|s| format!("sqlite {:<6} {name}", s.name()));
    if wanted("sqlite-enqueue") {
        let single = each(&format!("enqueue, 1 job/tx, {n}"));
        let bulk = each(&format!("enqueue_many {n}"));
        measure_each(
            &mut rows,
            runs,
            single.into_iter().chain(bulk).collect(),
            &mut || workloads::sqlite_enqueue(dir, n),
        )?;
    }
    if wanted("sqlite-workoff") {
        measure_each(
            &mut rows,
            runs,
            each(&format!("work-off {n} (c={c}, read_ahead={ra})")).to_vec(),
            &mut || workloads::sqlite_workoff(dir, n, worker),
        )?;
    }

    report::print_table(&rows, runs);
    print_ratios(&rows);
    if args.results {
        print_results(&rows, worker);
    }
    Ok(())
}

/// Runs `f` `runs` times; each run gives one figure per name.
fn measure_each(
    rows: &mut Vec<Row>,
    runs: usize,
    names: Vec<String>,
    f: &mut dyn FnMut() -> Result<Vec<Figure>, BoxError>,
) -> Result<(), BoxError> {
    let first = rows.len();
    rows.extend(names.into_iter().map(|workload| Row {
        workload,
        runs: Vec::new(),
    }));
    for run in 0..runs {
        for (row, figure) in rows[first..].iter_mut().zip(f()?) {
            println!("  {} run {}: {figure:?}", row.workload, run + 1);
            row.runs.push(figure);
        }
    }
    Ok(())
}

fn measure(
    rows: &mut Vec<Row>,
    runs: usize,
    name: String,
    f: &mut dyn FnMut() -> Result<Figure, BoxError>,
) -> Result<(), BoxError> {
    measure_each(rows, runs, vec![name], &mut || Ok(vec![f()?]))
}

/// The rows the peers benchmark compares, as its `RESULT` lines.
fn print_results(rows: &[Row], worker: WorkerSettings) {
    let tuned = format!(
        "concurrency={},read_ahead={}",
        worker.concurrency, worker.read_ahead
    );
    // (the row's first words, a word it also has, the RESULT key, a note)
    let keys: [(&str, &str, &str, &str); 5] = [
        ("enqueue, 1 job/tx", "", "single_enqueue", "-"),
        ("enqueue_many", "", "bulk_enqueue", "one-call"),
        (
            "work-off",
            "(defaults",
            "workoff_default",
            "Worker::new(db)",
        ),
        ("work-off", "(c=", "workoff_tuned", &tuned),
        ("pickup latency", "", "pickup", "-"),
    ];
    for (prefix, marker, key, note) in keys {
        let Some(row) = rows.iter().find(|r| {
            r.workload.starts_with(prefix)
                && r.workload.contains(marker)
                && !r.workload.contains("async")
                && !r.workload.contains("waiting")
        }) else {
            continue;
        };
        let figure = row.median();
        if let Some(rate) = figure.jobs_per_s {
            println!("RESULT dj {key} {rate:.0} jobs/s {note}");
        }
        if let (Some(p50), Some(p99)) = (figure.p50_ms, figure.p99_ms) {
            println!("RESULT dj {key}_p50_ms {p50:.2} ms {note}");
            println!("RESULT dj {key}_p99_ms {p99:.2} ms {note}");
        }
    }
    println!(
        "VERSION dj {} rust {}",
        env!("CARGO_PKG_VERSION"),
        rustc_version()
    );
}

/// The compiler's version line, as `rustc --version` prints it (best effort).
fn rustc_version() -> String {
    std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The `horizon` rows' common name for one spread of jobs, held or not.
fn horizon_name(spread: storage::Spread, held: bool) -> String {
    let what = if held {
        "REPEATABLE READ held"
    } else {
        "no transaction held"
    };
    format!("horizon, {}, {what}", spread.name())
}

/// The ratios the targets are stated in.
fn print_ratios(rows: &[Row]) {
    let rate = |prefix: &str, contains: &str| {
        rows.iter()
            .find(|r| r.workload.starts_with(prefix) && r.workload.contains(contains))
            .and_then(|r| r.median().jobs_per_s)
    };
    let waiting: Vec<f64> = rows
        .iter()
        .filter(|r| r.workload.ends_with(" waiting"))
        .filter_map(|r| r.median().jobs_per_s)
        .collect();
    if let [small, large] = waiting[..] {
        println!(
            "large-table rate / small-table rate: {:.0} %",
            100.0 * large / small
        );
    }
    if let Some(fresh) = rate("work-off", "every table analyzed") {
        for (what, marker) in [
            ("a worker of every queue", "only delayed_jobs analyzed"),
            ("a worker of listed queues", "lists the 20 queues"),
        ] {
            if let Some(backlog) = rate("work-off", marker) {
                println!(
                    "backlog ({what}) rate / freshly analyzed small-table rate: {:.2} (target: at least 0.8)",
                    backlog / fresh
                );
            }
        }
    }
    for spread in storage::Spread::ALL {
        for held in [true, false] {
            let what = horizon_name(spread, held);
            let first = rate(&what, ": round 1 ");
            let last = rate(&what, &format!(": round {HORIZON_ROUNDS} "));
            if let (Some(first), Some(last)) = (first, last) {
                println!(
                    "{what}: last round / first round: {:.2}{}",
                    last / first,
                    if held { " (target: at least 0.8)" } else { "" }
                );
            }
        }
    }
    if let (Some(raw), Some(dj)) = (rate("raw prepared", ""), rate("enqueue, 1", "")) {
        println!("single enqueue / raw INSERT: {:.0} %", 100.0 * dj / raw);
    }
    if let (Some(tuned), Some(default)) = (rate("work-off", "(c="), rate("work-off", "(defaults")) {
        println!(
            "default work-off / tuned work-off: {:.0} %",
            100.0 * default / tuned
        );
    }
}
