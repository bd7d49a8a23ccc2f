//! The workloads. Each starts from a fresh table (or SQLite file), runs once, and returns what
//! it measured.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dj::Job;

use crate::jobs::{noop_span, reset_noops, starts, Answer, Effect, Noop, Stamp, TxEffect};
use crate::report::{quantile, Figure};
use crate::setup::{self, BoxError, SqliteFile, Synchronous};

/// The worker settings every work-off uses.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub read_ahead: usize,
    /// The worker lists the `horizon` workload's queues (see `storage::Spread`).
    pub listed: bool,
    /// The fast lane (PostgreSQL; on unless `--no-fast-lane`).
    pub fast_lane: bool,
}

impl WorkerSettings {
    pub(crate) fn config(self) -> dj::WorkerConfig {
        let config = dj::WorkerConfig::default()
            .concurrency(self.concurrency)
            .read_ahead(self.read_ahead)
            .fast_lane(self.fast_lane);
        if self.listed {
            config.queues(crate::storage::QUEUES)
        } else {
            config
        }
    }
}

/// How long a work-off took: in all (start-up included: schema check, the rescuer's first
/// look for abandoned locks; and its shutdown), and from the first job's start to the last
/// job's start (the jobs between them: `n - 1`).
pub(crate) struct WorkOff {
    pub(crate) total: Duration,
    startup: Duration,
    steady: Duration,
}

impl WorkOff {
    /// The rate of `n` jobs over the whole call, or with `steady` from the first job's start
    /// to the last one's (the `n - 1` after the first); the start-up apart.
    fn figure(&self, n: u64, steady: bool) -> Figure {
        let (jobs, took) = if steady {
            (n - 1, self.steady)
        } else {
            (n, self.total)
        };
        Figure {
            jobs_per_s: Some(rate(jobs, took)),
            startup_ms: Some(self.startup.as_secs_f64() * 1e3),
            ..Figure::default()
        }
    }
}

/// Works off `n` jobs with one in-process worker (claims, performs and deletes; the last
/// delete is written before `work_off` returns).
pub(crate) fn work_off(db: &dj::Db, n: u64, settings: WorkerSettings) -> Result<WorkOff, BoxError> {
    let worker = dj::Worker::with_config(db.clone(), settings.config());
    reset_noops();
    let started = Instant::now();
    let report = worker.work_off(n)?;
    let ended = Instant::now();
    if report.succeeded != n {
        return Err(format!("worked off {} of {n} jobs ({report:?})", report.succeeded).into());
    }
    let (first, last) = noop_span().unwrap_or((started, ended));
    Ok(WorkOff {
        total: ended - started,
        startup: first - started,
        steady: last - first,
    })
}

fn rate(n: u64, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// `n` jobs enqueued up front, then worked off.
pub fn workoff(url: &str, n: u64, settings: WorkerSettings) -> Result<Figure, BoxError> {
    let db = setup::fresh_table(url)?;
    setup::pre_enqueue(url, &db, n)?;
    let took = work_off(&db, n, settings)?;
    Ok(Figure {
        jobs_per_s: Some(rate(n, took.total)),
        ..Figure::default()
    })
}

/// Works off `sample` jobs from a table holding `waiting`: the steady rate (first job's start
/// to last job's start) and, apart, the worker's start-up before it. With `reuse`, the table is the
/// one the previous call left (for the large table, enqueued once).
pub fn waiting(
    url: &str,
    waiting: u64,
    sample: u64,
    settings: WorkerSettings,
    reuse: bool,
) -> Result<Figure, BoxError> {
    let db = if reuse && setup::count(url).unwrap_or(0) >= sample as i64 {
        dj::Db::open(url)?
    } else {
        let db = setup::fresh_table(url)?;
        setup::pre_enqueue(url, &db, waiting)?;
        db
    };
    Ok(work_off(&db, sample, settings)?.figure(sample, true))
}

/// An idle worker LISTENing; `n` jobs enqueued `gap` apart, one per transaction; latency from
/// `enqueue` returning (its commit, as the client sees it) to `perform` starting. The second
/// figure is how long those `enqueue` calls took: a commit's round trip at that moment, which
/// bounds what a pickup (NOTIFY, then a claim that commits) can cost.
pub fn pickup(
    url: &str,
    n: usize,
    gap: Duration,
    settings: WorkerSettings,
) -> Result<Vec<Figure>, BoxError> {
    let db = setup::fresh_table(url)?;
    starts().lock().unwrap_or_else(|e| e.into_inner()).clear();
    let worker = dj::Worker::with_config(db.clone(), settings.config());
    let stop = worker.stop_flag();
    let handle = std::thread::spawn(move || worker.run());
    // Let the worker find the table empty and start listening.
    std::thread::sleep(Duration::from_millis(500));
    let mut committed = Vec::with_capacity(n);
    let mut calls = Vec::with_capacity(n);
    let first = Instant::now();
    for seq in 0..n {
        let due = first + gap * seq as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let called = Instant::now();
        Stamp { seq }.delay().enqueue(&db)?;
        let returned = Instant::now();
        committed.push(returned);
        calls.push((returned - called).as_secs_f64() * 1e3);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while starts().lock().unwrap_or_else(|e| e.into_inner()).len() < n {
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.set();
    handle.join().map_err(|_| "the worker panicked")??;
    let stamped = std::mem::take(&mut *starts().lock().unwrap_or_else(|e| e.into_inner()));
    if stamped.len() != n {
        return Err(format!("only {} of {n} jobs started within 10 s", stamped.len()).into());
    }
    // A perform can start before the client has read its commit's reply: count that as 0.
    let ms: Vec<f64> = stamped
        .iter()
        .map(|&(seq, at)| {
            at.checked_duration_since(committed[seq])
                .unwrap_or_default()
                .as_secs_f64()
                * 1e3
        })
        .collect();
    Ok(vec![percentiles(ms), percentiles(calls)])
}

fn percentiles(mut ms: Vec<f64>) -> Figure {
    ms.sort_by(f64::total_cmp);
    Figure {
        p50_ms: Some(quantile(&ms, 0.50)),
        p99_ms: Some(quantile(&ms, 0.99)),
        ..Figure::default()
    }
}

/// `enqueue_many` of `n` jobs from one call.
pub fn bulk(url: &str, n: u64) -> Result<Figure, BoxError> {
    enqueue_many(&setup::fresh_table(url)?, n)
}

/// `enqueue_many` of `n` jobs from one call into an empty `db`.
fn enqueue_many(db: &dj::Db, n: u64) -> Result<Figure, BoxError> {
    // Open the pool's connection first, as an application's would be.
    db.now()?;
    let started = Instant::now();
    let ids = dj::enqueue_many(db, (0..n).map(|n| Noop { n }))?;
    let took = started.elapsed();
    assert_eq!(ids.len() as u64, n);
    Ok(Figure {
        jobs_per_s: Some(rate(n, took)),
        ..Figure::default()
    })
}

/// `job.delay().enqueue(db)` for each job of `seqs`: one job per transaction.
fn enqueue_each(db: &dj::Db, seqs: std::ops::Range<u64>) -> Result<Duration, BoxError> {
    let started = Instant::now();
    for n in seqs {
        Noop { n }.delay().enqueue(db)?;
    }
    Ok(started.elapsed())
}

/// The server's floor for [`bulk`]: the same rows made by the server itself in one
/// `INSERT ... SELECT FROM generate_series` (no client, no parameters), same table, same
/// indexes and trigger.
pub fn bulk_floor(url: &str, n: u64) -> Result<Figure, BoxError> {
    setup::fresh_table(url)?;
    let mut client = setup::connect(url)?;
    let started = Instant::now();
    client.execute(
        "INSERT INTO delayed_jobs (name, handler, priority, run_at) \
         SELECT 'Noop', '{\"job\":\"Noop\",\"args\":{\"n\":' || g || '}}', 0, now() \
         FROM generate_series(1, $1::int8) AS g",
        &[&(n as i64)],
    )?;
    Ok(Figure {
        jobs_per_s: Some(rate(n, started.elapsed())),
        ..Figure::default()
    })
}

/// Single enqueue against its floor, on one table, alternating blocks of `BLOCK` (50)
/// transactions so that both see the same disk and load: `job.delay().enqueue(&db)` one job
/// per transaction, and a raw prepared INSERT of the same row (NOTIFY trigger included)
/// through the same `postgres` client. Returns the raw figure, then dj's.
pub fn single_vs_raw(url: &str, n: u64) -> Result<Vec<Figure>, BoxError> {
    const BLOCK: u64 = 50;
    let db = setup::fresh_table(url)?;
    let mut client = setup::connect(url)?;
    let insert = client.prepare(
        "INSERT INTO delayed_jobs (name, handler, priority, run_at) \
         VALUES ($1, $2, 0, now()) RETURNING id",
    )?;
    // Warm both: connections and prepared statements.
    client.query_one(&insert, &[&"Noop", &r#"{"job":"Noop","args":{"n":0}}"#])?;
    Noop { n: 0 }.delay().enqueue(&db)?;
    let (mut raw, mut dj) = (Duration::ZERO, Duration::ZERO);
    let mut i = 0;
    while i < n {
        let end = (i + BLOCK).min(n);
        let started = Instant::now();
        for n in i..end {
            let handler = format!(r#"{{"job":"Noop","args":{{"n":{n}}}}}"#);
            client.query_one(&insert, &[&"Noop", &handler])?;
        }
        raw += started.elapsed();
        dj += enqueue_each(&db, i..end)?;
        i = end;
    }
    Ok(vec![
        Figure {
            jobs_per_s: Some(rate(n, raw)),
            ..Figure::default()
        },
        Figure {
            jobs_per_s: Some(rate(n, dj)),
            ..Figure::default()
        },
    ])
}

/// What a unique enqueue costs (PostgreSQL, one job per transaction, alternating blocks as in
/// [`single_vs_raw`]): a plain `enqueue`, a unique one with a new key each time (an insert
/// through ON CONFLICT), and a unique one whose key a waiting job holds (a duplicate: no row
/// inserted). Returns the figures in that order.
pub fn unique_enqueue(url: &str, n: u64) -> Result<Vec<Figure>, BoxError> {
    const BLOCK: u64 = 50;
    let db = setup::fresh_table(url)?;
    Noop { n: 0 }.delay().enqueue(&db)?;
    Noop { n: 0 }.delay().unique("held").enqueue(&db)?;
    let (mut plain, mut fresh, mut duplicate) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut i = 0;
    while i < n {
        let end = (i + BLOCK).min(n);
        plain += enqueue_each(&db, i..end)?;
        let started = Instant::now();
        for n in i..end {
            let outcome = Noop { n }
                .delay()
                .unique(n.to_string())
                .enqueue_outcome(&db)?;
            debug_assert!(!outcome.is_duplicate());
        }
        fresh += started.elapsed();
        let started = Instant::now();
        for n in i..end {
            let outcome = Noop { n }.delay().unique("held").enqueue_outcome(&db)?;
            if !outcome.is_duplicate() {
                return Err("the held key was inserted again".into());
            }
        }
        duplicate += started.elapsed();
        i = end;
    }
    Ok([plain, fresh, duplicate]
        .map(|took| Figure {
            jobs_per_s: Some(rate(n, took)),
            ..Figure::default()
        })
        .to_vec())
}

/// [`workoff`] with every job under a per-key limit (`.concurrency_key`) too high to bind,
/// spread over 100 keys: what the limited claim costs for keyed jobs.
pub fn workoff_keyed(url: &str, n: u64, settings: WorkerSettings) -> Result<Figure, BoxError> {
    keyed_workoff(url, n, settings, |n, job| {
        job.concurrency_key(format!("key{}", n % 100), 1_000_000)
    })
}

/// `n` no-op jobs, each made by `make` from its number and `.delay()`, enqueued 50,000 at a
/// time, then worked off as [`workoff`] does.
fn keyed_workoff(
    url: &str,
    n: u64,
    settings: WorkerSettings,
    make: impl Fn(u64, dj::Delayed<Noop>) -> dj::Delayed<Noop>,
) -> Result<Figure, BoxError> {
    const SLICE: u64 = 50_000;
    let db = setup::fresh_table(url)?;
    let mut start = 0;
    while start < n {
        let end = (start + SLICE).min(n);
        dj::enqueue_many(&db, (start..end).map(|n| make(n, Noop { n }.delay())))?;
        start = end;
    }
    setup::vacuum(url)?;
    let took = work_off(&db, n, settings)?;
    Ok(Figure {
        jobs_per_s: Some(rate(n, took.total)),
        ..Figure::default()
    })
}

/// [`workoff_keyed`] with a rate on each key too high to bind (`.rate_key`), over ten named
/// queues and three priorities: what counting and recording the starts costs the limited
/// claim.
pub fn workoff_rated(url: &str, n: u64, settings: WorkerSettings) -> Result<Figure, BoxError> {
    let limit = dj::Rate::per_second(1_000_000)?;
    keyed_workoff(url, n, settings, |n, job| {
        job.queue(format!("q{}", n % 10))
            .priority((n % 3) as i32)
            .rate_key(format!("key{}", n % 100), limit)
    })
}

/// [`workoff`] with every job under a fairness key (`.fairness_key`: 100 tenants, claimed
/// round-robin), over ten named queues and three priorities: what the limited claim's walk
/// of keys costs against the plain claim.
pub fn workoff_fair(url: &str, n: u64, settings: WorkerSettings) -> Result<Figure, BoxError> {
    keyed_workoff(url, n, settings, |n, job| {
        job.queue(format!("q{}", n % 10))
            .priority((n % 3) as i32)
            .fairness_key(format!("tenant{}", n % 100))
    })
}

/// What a dependency costs: `n` no-ops enqueued with `enqueue_many` and worked off, against
/// the same `n` as the steps of one workflow, enqueued in one call: `n` independent steps,
/// and a fan-out (one step, then `n - 1` after it, each released by the first one's
/// completion). Returns the enqueue rate then the work-off rate of each, in that order.
pub fn workflow(url: &str, n: u64, settings: WorkerSettings) -> Result<Vec<Figure>, BoxError> {
    let per_s = |took: Duration| Figure {
        jobs_per_s: Some(rate(n, took)),
        ..Figure::default()
    };
    let mut figures = Vec::new();
    for shape in ["plain", "independent", "fan-out"] {
        let db = setup::fresh_table(url)?;
        let started = Instant::now();
        if shape == "plain" {
            dj::enqueue_many(&db, (0..n).map(|n| Noop { n }))?;
        } else {
            let mut workflow = dj::Workflow::new(shape);
            workflow.step("0", Noop { n: 0 });
            for n in 1..n {
                let step = workflow.step(n.to_string(), Noop { n });
                if shape == "fan-out" {
                    step.after(["0"]);
                }
            }
            workflow.enqueue(&db)?;
        }
        figures.push(per_s(started.elapsed()));
        setup::vacuum(url)?;
        figures.push(per_s(work_off(&db, n, settings)?.total));
    }
    Ok(figures)
}

/// [`workoff`] with `Worker::new(db)`: every setting dj's default (concurrency 1, the
/// read-ahead following the pace).
pub fn workoff_default(url: &str, n: u64) -> Result<Figure, BoxError> {
    let db = setup::fresh_table(url)?;
    setup::pre_enqueue(url, &db, n)?;
    let started = Instant::now();
    let report = dj::Worker::new(db).work_off(n)?;
    if report.succeeded != n {
        return Err(format!("worked off {} of {n} jobs ({report:?})", report.succeeded).into());
    }
    Ok(Figure {
        jobs_per_s: Some(rate(n, started.elapsed())),
        ..Figure::default()
    })
}

/// [`workoff`] with every job in a queue under a limit (`worker limit`) too high to bind: what
/// the limited claim (the advisory lock, the counts of running rows) costs against the plain
/// claim, measured the same way.
pub fn workoff_limited(url: &str, n: u64, settings: WorkerSettings) -> Result<Figure, BoxError> {
    let db = setup::fresh_table(url)?;
    setup::pre_enqueue(url, &db, n)?;
    setup::connect(url)?.batch_execute("UPDATE delayed_jobs SET queue = 'limited'")?;
    setup::vacuum(url)?;
    db.limit_queue("limited", Some(1_000_000))?;
    let took = work_off(&db, n, settings)?;
    Ok(Figure {
        jobs_per_s: Some(rate(n, took.total)),
        ..Figure::default()
    })
}

/// `n` async no-op jobs enqueued up front, then worked off by one worker (in this process),
/// as [`workoff`] does for sync ones.
pub fn workoff_async(url: &str, n: u64, settings: WorkerSettings) -> Result<Figure, BoxError> {
    let db = setup::fresh_table(url)?;
    setup::enqueue_async_noops(&db, n)?;
    setup::vacuum(url)?;
    let took = work_off(&db, n, settings)?;
    Ok(Figure {
        jobs_per_s: Some(rate(n, took.total)),
        ..Figure::default()
    })
}

/// Single enqueue from inside tokio (a current-thread runtime, as a small service's), one job
/// per transaction, in alternating blocks of `BLOCK` so that all see the same disk and load:
/// the sync `enqueue(&db)` from a plain thread (the reference), `enqueue_async(&db)`, and
/// `enqueue_async(&mut tx)` in a sqlx transaction of its own (BEGIN, INSERT, COMMIT). Returns
/// the figures in that order.
pub fn single_async(url: &str, n: u64) -> Result<Vec<Figure>, BoxError> {
    use sqlx::Connection as _;
    const BLOCK: u64 = 50;
    let db = setup::fresh_table(url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut conn = runtime.block_on(sqlx::PgConnection::connect(url))?;
    // Warm all three: connections and prepared statements.
    Noop { n: 0 }.delay().enqueue(&db)?;
    runtime.block_on(async {
        Noop { n: 0 }.delay().enqueue_async(&db).await?;
        let mut tx = conn.begin().await.map_err(dj::Error::Sqlx)?;
        Noop { n: 0 }.delay().enqueue_async(&mut tx).await?;
        tx.commit().await.map_err(dj::Error::Sqlx)
    })?;
    let (mut sync, mut on_db, mut in_tx) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut i = 0;
    while i < n {
        let end = (i + BLOCK).min(n);
        sync += enqueue_each(&db, i..end)?;
        let (a, b) = runtime.block_on(async {
            let started = Instant::now();
            for n in i..end {
                Noop { n }.delay().enqueue_async(&db).await?;
            }
            let a = started.elapsed();
            let started = Instant::now();
            for n in i..end {
                let mut tx = conn.begin().await.map_err(dj::Error::Sqlx)?;
                Noop { n }.delay().enqueue_async(&mut tx).await?;
                tx.commit().await.map_err(dj::Error::Sqlx)?;
            }
            Ok::<_, dj::Error>((a, started.elapsed()))
        })?;
        on_db += a;
        in_tx += b;
        i = end;
    }
    Ok([sync, on_db, in_tx]
        .into_iter()
        .map(|took| Figure {
            jobs_per_s: Some(rate(n, took)),
            ..Figure::default()
        })
        .collect())
}

/// SQLite, one fresh file per measurement, each `synchronous` setting in turn (so both see the
/// same load): `n` jobs enqueued one per transaction, then `n` from one `enqueue_many` call.
/// Returns the single figures (NORMAL, FULL), then the bulk ones.
pub fn sqlite_enqueue(dir: &Path, n: u64) -> Result<Vec<Figure>, BoxError> {
    let mut figures = Vec::new();
    for synchronous in Synchronous::BOTH {
        let file = SqliteFile::new(dir, synchronous)?;
        // Open the pool's connection first, as an application's would be.
        file.db.now()?;
        figures.push(Figure {
            jobs_per_s: Some(rate(n, enqueue_each(&file.db, 0..n)?)),
            ..Figure::default()
        });
    }
    for synchronous in Synchronous::BOTH {
        figures.push(enqueue_many(&SqliteFile::new(dir, synchronous)?.db, n)?);
    }
    Ok(figures)
}

/// SQLite, a fresh file per setting: `n` jobs enqueued up front, then worked off by one
/// in-process worker, as [`workoff`] does (the rate over the whole call); start-up apart.
pub fn sqlite_workoff(
    dir: &Path,
    n: u64,
    settings: WorkerSettings,
) -> Result<Vec<Figure>, BoxError> {
    let mut figures = Vec::new();
    for synchronous in Synchronous::BOTH {
        let file = SqliteFile::new(dir, synchronous)?;
        setup::enqueue_noops(&file.db, n)?;
        figures.push(work_off(&file.db, n, settings)?.figure(n, false));
    }
    Ok(figures)
}

/// A worker in its own process (this program, `--child-worker N`) works off `n` jobs; its
/// peak resident memory (VmHWM) and its rate. With `log`, it logs as the CLI does (text
/// lines to a pipe-free sink: stderr on /dev/null), so the cost of per-job lines shows.
pub fn child(url: &str, n: u64, settings: WorkerSettings, log: bool) -> Result<Figure, BoxError> {
    let db = setup::fresh_table(url)?;
    setup::pre_enqueue(url, &db, n)?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["--url", url, "--child-worker", &n.to_string()])
        .args(["--concurrency", &settings.concurrency.to_string()])
        .args(["--read-ahead", &settings.read_ahead.to_string()])
        .stderr(Stdio::null());
    if log {
        command.arg("--child-log");
    }
    let output = command.output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("the child worker failed: {text}").into());
    }
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    let (Some(Ok(rate)), Some(Ok(hwm_kb))) = (fields.next(), fields.next()) else {
        return Err(format!("unexpected child output: {text:?}").into());
    };
    Ok(Figure {
        jobs_per_s: Some(rate),
        rss_mb: Some(hwm_kb / 1024.0),
        ..Figure::default()
    })
}

/// The child's side of [`child`]: prints `JOBS_PER_S VMHWM_KB`.
pub fn child_main(url: &str, n: u64, settings: WorkerSettings, log: bool) -> Result<(), BoxError> {
    if log {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_target(false)
            .with_writer(std::io::stderr)
            .init();
    }
    let db = dj::Db::open(url)?;
    let took = work_off(&db, n, settings)?;
    println!("{} {}", rate(n, took.total), vm_kb("VmHWM")?);
    Ok(())
}

/// A `/proc/self/status` field in kB.
fn vm_kb(field: &str) -> Result<f64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status").into())
}

/// The shape of a real backlog: `total` no-op jobs over 20 named queues (a few busy, most
/// quiet: queue `q00` gets about a fifth of the jobs, `q19` a hundredth) and priorities 0–4,
/// enqueued through `enqueue_many`. Then `ANALYZE` of `delayed_jobs` only, as autovacuum
/// leaves a database (it never analyzes an empty side table), or of every table with
/// `analyze_all`. Returns the queue names.
fn named_queue_backlog(
    url: &str,
    db: &dj::Db,
    total: u64,
    analyze_all: bool,
) -> Result<Vec<String>, BoxError> {
    const SLICE: u64 = 50_000;
    const QUEUES: u64 = 20;
    let queues: Vec<String> = (0..QUEUES).map(|q| format!("q{q:02}")).collect();
    // A fixed, skewed spread: the n-th job's queue is 20·u² for u uniform in [0, 1).
    let queue_of = |n: u64| {
        let u = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * QUEUES as f64) as usize).min(QUEUES as usize - 1)
    };
    let mut start = 0;
    while start < total {
        let end = (start + SLICE).min(total);
        dj::enqueue_many(
            db,
            (start..end).map(|n| {
                Noop { n }
                    .delay()
                    .queue(queues[queue_of(n)].clone())
                    .priority((n % 5) as i32)
            }),
        )?;
        start = end;
    }
    let mut client = setup::connect(url)?;
    if analyze_all {
        client.batch_execute("VACUUM ANALYZE")?;
    } else {
        client.batch_execute("VACUUM ANALYZE delayed_jobs")?;
    }
    client.batch_execute("CHECKPOINT")?;
    Ok(queues)
}

/// Works off `n` jobs from the front of a [`named_queue_backlog`] of `total` rows, with a
/// worker of every queue or, with `listed`, one that lists all 20 queues (the listed-queues
/// claim). The rate from the first job's start to the last one's.
pub fn workoff_backlog(
    url: &str,
    total: u64,
    n: u64,
    settings: WorkerSettings,
    analyze_all: bool,
    listed: bool,
) -> Result<Figure, BoxError> {
    let db = setup::fresh_table(url)?;
    let queues = named_queue_backlog(url, &db, total, analyze_all)?;
    let mut config = settings.config();
    if listed {
        config = config.queues(queues);
    }
    let worker = dj::Worker::with_config(db, config);
    reset_noops();
    let started = Instant::now();
    let report = worker.work_off(n)?;
    if report.succeeded != n {
        return Err(format!("worked off {} of {n} jobs ({report:?})", report.succeeded).into());
    }
    let (first, last) = noop_span().unwrap_or((started, Instant::now()));
    Ok(Figure {
        jobs_per_s: Some(rate(n - 1, last - first)),
        startup_ms: Some((first - started).as_secs_f64() * 1e3),
        ..Figure::default()
    })
}

/// The same enqueues and work-off directly (`direct`) and through a PgBouncer in transaction
/// pooling (`pooled`, the same database; `pooler=transaction` is added to it): one job per
/// transaction, `single` of each in alternating blocks of 50 (as [`single_vs_raw`]);
/// `enqueue_many` of `bulk` jobs; and a work-off of `n` jobs enqueued up front. Returns, for
/// each of the three, the direct figure and then the pooled one.
pub fn pgbouncer(
    direct: &str,
    pooled: &str,
    (single, bulk, n): (u64, u64, u64),
    settings: WorkerSettings,
) -> Result<Vec<Figure>, BoxError> {
    const BLOCK: u64 = 50;
    let joiner = if pooled.contains('?') { '&' } else { '?' };
    let pooled = format!("{pooled}{joiner}pooler=transaction");
    let rate_of = |jobs: u64, took: Duration| Figure {
        jobs_per_s: Some(rate(jobs, took)),
        ..Figure::default()
    };

    let db = setup::fresh_table(direct)?;
    let through = dj::Db::open(&pooled)?;
    // Warm both: connections (and the direct one's prepared statements).
    Noop { n: 0 }.delay().enqueue(&db)?;
    Noop { n: 0 }.delay().enqueue(&through)?;
    let (mut by_direct, mut by_pool) = (Duration::ZERO, Duration::ZERO);
    let mut i = 0;
    while i < single {
        let end = (i + BLOCK).min(single);
        by_direct += enqueue_each(&db, i..end)?;
        by_pool += enqueue_each(&through, i..end)?;
        i = end;
    }
    let mut figures = vec![rate_of(single, by_direct), rate_of(single, by_pool)];

    figures.push(enqueue_many(&setup::fresh_table(direct)?, bulk)?);
    setup::fresh_table(direct)?;
    figures.push(enqueue_many(&dj::Db::open(&pooled)?, bulk)?);

    for url in [direct, pooled.as_str()] {
        let db = setup::fresh_table(direct)?;
        setup::pre_enqueue(direct, &db, n)?;
        let took = work_off(&dj::Db::open(url)?, n, settings)?;
        figures.push(rate_of(n, took.total));
    }
    Ok(figures)
}

/// `n` jobs that each record a result, enqueued up front and worked off: the cost of
/// storing results beside `workoff`'s plain completions (on PostgreSQL such a job leaves the
/// fast lane and is completed the ordinary way, with its result).
pub fn results_workoff(url: &str, n: u64, settings: WorkerSettings) -> Result<Figure, BoxError> {
    let db = setup::fresh_table(url)?;
    setup::enqueue_in_slices(&db, n, |n| Answer { n })?;
    setup::vacuum(url)?;
    let took = work_off(&db, n, settings)?;
    Ok(Figure {
        jobs_per_s: Some(rate(n, took.total)),
        ..Figure::default()
    })
}

/// An idle worker; `n` jobs enqueued one at a time with `enqueue_and_wait`, each waited for
/// before the next: the round trip from the call to its result in hand (enqueue, wake-up,
/// claim, perform, completion with the result, the waiter's wake-up and look).
pub fn result_wait(db: &dj::Db, n: usize, settings: WorkerSettings) -> Result<Figure, BoxError> {
    let worker = dj::Worker::with_config(db.clone(), settings.config());
    let stop = worker.stop_flag();
    let handle = std::thread::spawn(move || worker.run());
    // Let the worker find the table empty and start listening.
    std::thread::sleep(Duration::from_millis(500));
    let mut ms = Vec::with_capacity(n);
    let mut failure = None;
    for i in 0..n as u64 {
        let called = Instant::now();
        let answered = Answer { n: i }
            .delay()
            .enqueue_and_wait::<u64>(db, Duration::from_secs(10));
        match answered {
            Ok(answer) if answer == i => ms.push(called.elapsed().as_secs_f64() * 1e3),
            Ok(other) => failure = Some(format!("job {i} answered {other}")),
            Err(e) => failure = Some(e.to_string()),
        }
        if failure.is_some() {
            break;
        }
    }
    stop.set();
    handle.join().map_err(|_| "the worker panicked")??;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(percentiles(ms)),
    }
}

/// Job `n` in one of the ten named queues `horizon` uses, with a priority from 0 to 2, as an
/// app's jobs are spread.
fn spread<J: Job>(n: u64, job: J) -> dj::Delayed<J> {
    let queue = crate::storage::QUEUES[(n % 10) as usize];
    job.delay().queue(queue).priority((n % 3) as i32)
}

/// `n` jobs each inserting a row in a transaction on a connection of their own, spread over
/// ten named queues and three priorities, worked off:
/// completed by the worker after (`transactional` false), or each completing its row in its
/// insert's transaction with `complete_in`.
pub fn effects_workoff(
    url: &str,
    n: u64,
    settings: WorkerSettings,
    transactional: bool,
) -> Result<Figure, BoxError> {
    let db = setup::fresh_table(url)?;
    setup::connect(url)?.batch_execute(crate::jobs::CREATE_EFFECTS)?;
    let url = url.to_owned();
    if transactional {
        dj::enqueue_many(
            &db,
            (0..n).map(|n| {
                spread(
                    n,
                    TxEffect {
                        n,
                        url: url.clone(),
                    },
                )
            }),
        )?;
    } else {
        dj::enqueue_many(
            &db,
            (0..n).map(|n| {
                spread(
                    n,
                    Effect {
                        n,
                        url: url.clone(),
                    },
                )
            }),
        )?;
    }
    setup::vacuum(&url)?;
    let took = work_off(&db, n, settings)?;
    let effects: i64 = setup::connect(&url)?
        .query_one("SELECT count(*) FROM bench_effects", &[])?
        .get(0);
    if effects != n as i64 {
        return Err(format!("{effects} effects for {n} jobs").into());
    }
    Ok(Figure {
        jobs_per_s: Some(rate(n, took.total)),
        ..Figure::default()
    })
}
