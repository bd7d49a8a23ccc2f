//! The storage workloads: how the table holds up over time rather than how fast one batch
//! goes. `horizon` works off rounds of jobs while a `REPEATABLE READ` transaction holds the
//! MVCC horizon (vacuum can remove nothing, index entries of deleted rows cannot be killed);
//! `soak` enqueues at a fixed rate while a worker keeps up, for minutes, and prints every
//! interval's throughput, pickup latency, table and index sizes and dead tuples.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dj::{Context, Job, Perform};
use serde::{Deserialize, Serialize};

use crate::jobs::{base, reset_noops, Noop};
use crate::report::{quantile, Figure};
use crate::setup::{self, BoxError};
use crate::workloads::{work_off, WorkerSettings};

/// A connection holding a `REPEATABLE READ` snapshot open: the forgotten `BEGIN` in psql, a
/// long report. It reads nothing of dj's, so it holds the horizon without holding a lock on
/// dj's tables. Dropped, it rolls back.
struct HeldHorizon {
    client: postgres::Client,
}

impl HeldHorizon {
    fn hold(url: &str) -> Result<Self, BoxError> {
        let mut client = setup::connect(url)?;
        client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;")?;
        Ok(Self { client })
    }

    fn release(mut self) -> Result<(), BoxError> {
        self.client.batch_execute("ROLLBACK")?;
        Ok(())
    }
}

/// What the table looks like now, from the server's statistics.
#[derive(Debug, Clone, Copy, Default)]
struct TableShape {
    table_mb: f64,
    index_mb: f64,
    dead_tuples: i64,
    rows: i64,
}

fn table_shape(client: &mut postgres::Client) -> Result<TableShape, BoxError> {
    // The statistics a backend reports reach the view within a second (PostgreSQL 15 flushes
    // them at most once a second); the figures are a minute apart, so that is close enough.
    let row = client.query_one(
        "SELECT pg_table_size('delayed_jobs')::float8 / 1048576, \
                pg_indexes_size('delayed_jobs')::float8 / 1048576, \
                coalesce((SELECT n_dead_tup FROM pg_stat_user_tables \
                          WHERE relname = 'delayed_jobs'), 0), \
                (SELECT count(*) FROM delayed_jobs)",
        &[],
    )?;
    Ok(TableShape {
        table_mb: row.get(0),
        index_mb: row.get(1),
        dead_tuples: row.get(2),
        rows: row.get(3),
    })
}

/// `rounds` rounds of `per_round` jobs, each enqueued and then worked off, on one table,
/// with a `REPEATABLE READ` transaction held from before the first round to after the last
/// (`held`) or none. After each round the table is vacuumed and analyzed, as autovacuum
/// would (this server may run without it): with the horizon held, vacuum can remove nothing. One figure
/// per round: the work-off rate.
/// What the `horizon` rounds enqueue and who works them off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// No queue, priority 0: the simplest table.
    NoQueue,
    /// [`QUEUES`] named queues and priorities 0 to 2 mixed; a worker of every queue.
    Queues,
    /// The same, the worker listing the queues.
    ListedQueues,
}

/// The named queues of [`Spread::Queues`].
pub(crate) const QUEUES: [&str; 10] = [
    "mail", "billing", "reports", "search", "images", "webhooks", "exports", "sync", "audit",
    "default",
];

impl Spread {
    pub const ALL: [Spread; 3] = [Spread::NoQueue, Spread::Queues, Spread::ListedQueues];

    pub fn name(self) -> &'static str {
        match self {
            Spread::NoQueue => "no queue",
            Spread::Queues => "10 queues, priorities 0-2",
            Spread::ListedQueues => "10 queues, priorities 0-2, worker lists them",
        }
    }

    fn enqueue(self, db: &dj::Db, n: u64) -> Result<(), BoxError> {
        if self == Spread::NoQueue {
            return setup::enqueue_noops(db, n);
        }
        dj::enqueue_many(
            db,
            (0..n).map(|n| {
                Noop { n }
                    .delay()
                    .queue(QUEUES[(n % 10) as usize])
                    .priority((n / 10 % 3) as i32)
            }),
        )?;
        Ok(())
    }

    fn worker(self, settings: WorkerSettings) -> WorkerSettings {
        WorkerSettings {
            listed: self == Spread::ListedQueues,
            ..settings
        }
    }
}

pub fn horizon(
    url: &str,
    (rounds, per_round): (usize, u64),
    spread: Spread,
    settings: WorkerSettings,
    held: bool,
) -> Result<Vec<Figure>, BoxError> {
    let db = setup::fresh_table(url)?;
    let mut stats = setup::connect(url)?;
    let holder = if held {
        Some(HeldHorizon::hold(url)?)
    } else {
        None
    };
    let mut figures = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        spread.enqueue(&db, per_round)?;
        let took = work_off(&db, per_round, spread.worker(settings))?;
        stats.batch_execute("VACUUM ANALYZE delayed_jobs")?;
        let shape = table_shape(&mut stats)?;
        let rate = per_round as f64 / took.total.as_secs_f64();
        println!(
            "    round {round}: {rate:.0} jobs/s; table {:.1} MB, indexes {:.1} MB, {} dead tuples",
            shape.table_mb, shape.index_mb, shape.dead_tuples
        );
        figures.push(Figure {
            jobs_per_s: Some(rate),
            ..Figure::default()
        });
    }
    if let Some(holder) = holder {
        holder.release()?;
    }
    Ok(figures)
}

/// The soak's job: when it was enqueued, in nanoseconds after [`base`].
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Soak {
    pub enqueued: u64,
}

impl Perform for Soak {
    type Error = std::convert::Infallible;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        let now = base().elapsed().as_nanos() as u64;
        pickups()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(now.saturating_sub(self.enqueued));
        Ok(())
    }
}

/// The pickup latencies (enqueue call → perform start, nanoseconds) since the last drain.
fn pickups() -> &'static Mutex<Vec<u64>> {
    static PICKUPS: OnceLock<Mutex<Vec<u64>>> = OnceLock::new();
    PICKUPS.get_or_init(|| Mutex::new(Vec::new()))
}

/// How the soak runs.
#[derive(Debug, Clone, Copy)]
pub struct SoakPlan {
    /// Jobs enqueued per second, in batches every [`SoakPlan::TICK`].
    pub rate: u64,
    /// How long it runs.
    pub length: Duration,
    /// How often it prints a line.
    pub interval: Duration,
    /// The worker's `reindex_every` (the elected maintainer rebuilds the table's indexes).
    pub reindex_every: Option<Duration>,
}

impl SoakPlan {
    const TICK: Duration = Duration::from_millis(20);
}

/// One interval's figures.
#[derive(Debug, Clone, Copy)]
struct Interval {
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    shape: TableShape,
}

/// Enqueues `plan.rate` jobs a second for `plan.length` while one worker works them off,
/// with a `REPEATABLE READ` transaction held for the middle third. Prints a line per
/// interval and, at the end, each figure's last interval against its second. The figures:
/// the last interval's throughput and pickup percentiles.
pub fn soak(url: &str, plan: SoakPlan, settings: WorkerSettings) -> Result<Figure, BoxError> {
    let db = setup::fresh_table(url)?;
    reset_noops();
    pickups().lock().unwrap_or_else(|e| e.into_inner()).clear();
    let mut config = settings.config();
    if let Some(every) = plan.reindex_every {
        config = config.reindex_every(every);
    }
    let worker = dj::Worker::with_config(db.clone(), config);
    let stop = worker.stop_flag();
    let working = std::thread::spawn(move || worker.run());
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (db, producing) = (db.clone(), producing.clone());
        std::thread::spawn(move || produce(&db, plan.rate, &producing))
    };
    let mut stats = setup::connect(url)?;
    let vacuuming = vacuum_stand_in(url, &mut stats, producing.clone())?;
    println!(
        "    {:>6}  {:>8}  {:>8}  {:>8}  {:>9}  {:>9}  {:>10}  {:>8}  horizon",
        "at s", "jobs/s", "p50 ms", "p99 ms", "table MB", "index MB", "dead tup", "backlog"
    );
    let started = Instant::now();
    let third = plan.length / 3;
    let mut holder = None;
    let mut intervals = Vec::new();
    let mut next = started + plan.interval;
    while next <= started + plan.length {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let at = next - started;
        if holder.is_none() && at > third && at <= 2 * third {
            holder = Some(HeldHorizon::hold(url)?);
        } else if at > 2 * third {
            if let Some(h) = holder.take() {
                h.release()?;
            }
        }
        let interval = drain(&mut stats, plan.interval)?;
        println!(
            "    {:>6.0}  {:>8.0}  {:>8.2}  {:>8.2}  {:>9.1}  {:>9.1}  {:>10}  {:>8}  {}",
            at.as_secs_f64(),
            interval.throughput,
            interval.p50_ms,
            interval.p99_ms,
            interval.shape.table_mb,
            interval.shape.index_mb,
            interval.shape.dead_tuples,
            interval.shape.rows,
            if holder.is_some() { "held" } else { "-" }
        );
        intervals.push(interval);
        next += plan.interval;
    }
    producing.store(false, Ordering::Relaxed);
    let produced = producer.join().map_err(|_| "the producer panicked")??;
    if let Some(vacuuming) = vacuuming {
        vacuuming
            .join()
            .map_err(|_| "the vacuum stand-in panicked")??;
    }
    if let Some(h) = holder.take() {
        h.release()?;
    }
    stop.set();
    working.join().map_err(|_| "the worker panicked")??;
    println!("    enqueued {produced} jobs");
    flatness(&intervals);
    let last = intervals.last().ok_or("the soak ran no interval")?;
    Ok(Figure {
        jobs_per_s: Some(last.throughput),
        p50_ms: Some(last.p50_ms),
        p99_ms: Some(last.p99_ms),
        ..Figure::default()
    })
}

/// How often the soak vacuums the table itself when the server's autovacuum is off.
const VACUUM_EVERY: Duration = Duration::from_secs(10);

/// A server without autovacuum (as this one may be, for the other workloads' sake) never
/// removes a finished job's row: a soak there would measure a table no deployment has. Then
/// the soak vacuums `delayed_jobs` itself every [`VACUUM_EVERY`] while `running`, as
/// autovacuum would on a busy queue table.
fn vacuum_stand_in(
    url: &str,
    stats: &mut postgres::Client,
    running: Arc<AtomicBool>,
) -> Result<Option<std::thread::JoinHandle<Result<(), BoxError>>>, BoxError> {
    let on: String = stats.query_one("SHOW autovacuum", &[])?.get(0);
    if on == "on" {
        return Ok(None);
    }
    println!(
        "    the server runs without autovacuum: the soak runs VACUUM delayed_jobs every {} s",
        VACUUM_EVERY.as_secs()
    );
    let mut client = setup::connect(url)?;
    Ok(Some(std::thread::spawn(move || {
        let mut due = Instant::now() + VACUUM_EVERY;
        while running.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if Instant::now() >= due {
                client.batch_execute("VACUUM delayed_jobs")?;
                due += VACUUM_EVERY;
            }
        }
        Ok(())
    })))
}

/// Enqueues `rate` jobs a second in batches every [`SoakPlan::TICK`], on schedule (a late
/// batch is not made up by a bigger one), until `producing` is cleared. Returns how many.
fn produce(db: &dj::Db, rate: u64, producing: &AtomicBool) -> Result<u64, BoxError> {
    let per_tick = (rate as f64 * SoakPlan::TICK.as_secs_f64())
        .round()
        .max(1.0) as u64;
    let mut produced = 0;
    let mut due = Instant::now();
    while producing.load(Ordering::Relaxed) {
        let enqueued = base().elapsed().as_nanos() as u64;
        dj::enqueue_many(db, (0..per_tick).map(|_| Soak { enqueued }))?;
        produced += per_tick;
        due += SoakPlan::TICK;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    Ok(produced)
}

/// The pickups since the last drain, as one interval's figures.
fn drain(stats: &mut postgres::Client, length: Duration) -> Result<Interval, BoxError> {
    let mut ms: Vec<f64> =
        std::mem::take(&mut *pickups().lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .map(|nanos| nanos as f64 / 1e6)
            .collect();
    ms.sort_by(f64::total_cmp);
    let (p50, p99) = if ms.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        (quantile(&ms, 0.5), quantile(&ms, 0.99))
    };
    Ok(Interval {
        throughput: ms.len() as f64 / length.as_secs_f64(),
        p50_ms: p50,
        p99_ms: p99,
        shape: table_shape(stats)?,
    })
}

/// Each figure's last interval against its second (the first includes the start-up), as
/// the target states flatness: within 10 %.
fn flatness(intervals: &[Interval]) {
    let (Some(second), Some(last)) = (intervals.get(1), intervals.last()) else {
        println!("    (too short to compare the second interval with the last)");
        return;
    };
    type Read = fn(&Interval) -> f64;
    let figures: [(&str, Read); 6] = [
        ("throughput", |i| i.throughput),
        ("pickup p50", |i| i.p50_ms),
        ("pickup p99", |i| i.p99_ms),
        ("table size", |i| i.shape.table_mb),
        ("index size", |i| i.shape.index_mb),
        ("dead tuples", |i| i.shape.dead_tuples as f64),
    ];
    for (name, figure) in figures {
        let (a, b) = (figure(second), figure(last));
        let change = if a == b {
            0.0
        } else {
            100.0 * (b - a) / a.abs()
        };
        let flat = change.abs() <= 10.0;
        println!(
            "    soak {name}: second interval {a:.2}, last {b:.2} ({change:+.0} %){}",
            if flat {
                ""
            } else {
                "  NOT FLAT (target: within 10 %)"
            }
        );
    }
}
