//! The worker, split by role as in River, around one slot table:
//! - `runtime`: starts and stops the roles below, owns start-up (registration) and shutdown;
//! - `slots`: every job this worker holds, with its state (claimed, running, overrunning,
//!   finished, lost) and the transitions between them, under one lock;
//! - `producer`: claims ready jobs in batches into the slot table; waits on LISTEN/NOTIFY or
//!   polls when idle;
//! - `executor`: runs one job at a time per thread (`--concurrency` threads), hooks and panics
//!   included, and hands a failed attempt to `retry`;
//! - `retry`: the retry policy: after a failed attempt, snooze, retry after a backoff, or fail
//!   for good (kept or deleted), and the `failure` hook;
//! - `watchdog`: enforces `max_run_time` on running jobs;
//! - `completer`: writes outcomes, many per statement, retrying until the database takes
//!   them, so a finished job is never run again because a delete failed; it also ends the
//!   fast lanes;
//! - `lane`: the fast lanes (PostgreSQL): batches of short jobs claimed by row locks held in
//!   an open transaction, whose outcomes gather until the lane ends;
//! - `heartbeat`: keeps this worker's `dj_workers` entry fresh, records which jobs started,
//!   and notices when this worker was declared dead (fencing);
//! - `rescuer`: database maintenance, one worker at a time: frees the jobs of dead workers.

mod completer;
mod cron;
mod events;
mod executor;
mod heartbeat;
mod lane;
mod liveness;
mod outcome;
mod pace;
mod producer;
mod progress;
mod rescuer;
mod retry;
mod runtime;
pub(crate) mod signals;
mod slots;
mod watchdog;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use crate::stop::StopFlag;
pub use events::{Event, JobOutcome};
#[doc(hidden)] // internals, read by dj's tests
pub use liveness::{parse_worker_name, process_alive, Liveness};

use crate::context::State;
use crate::db::Db;
use crate::error::Result;
use crate::model::JobId;
use crate::setup::{StateFn, StateSource};

/// A worker's settings. Each worker has its own; nothing is process-global.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// Prefix of the worker name (`PREFIX host:HOST pid:PID`).
    pub name_prefix: Option<String>,
    /// Queues to work; empty means every queue, including jobs with no queue.
    pub queues: Vec<String>,
    /// Only jobs with `priority >= min_priority`.
    pub min_priority: Option<i32>,
    /// Only jobs with `priority <= max_priority`.
    pub max_priority: Option<i32>,
    /// How long to wait for work when none is ready (LISTEN/NOTIFY wakes a PostgreSQL
    /// worker sooner).
    pub sleep_delay: Duration,
    /// The most jobs to hold claimed beyond the running ones. Within it, a worker reads
    /// ahead what its executors will start within 100 ms at the pace jobs have been finishing:
    /// large batches of short jobs, none of long ones. `0` claims only for free executors.
    pub read_ahead: usize,
    /// Jobs run at once in this process.
    pub concurrency: usize,
    /// Exit when no job is ready instead of waiting.
    pub exit_on_complete: bool,
    /// Runs in all before a job fails permanently (a job's own setting wins).
    pub max_attempts: u32,
    /// How long one run may take (a job's own setting wins).
    pub max_run_time: Duration,
    /// Delete permanently failed jobs (true) or keep them with `failed_at` (false, the
    /// default: kept until `keep_failed_for` has passed; a job's own setting wins).
    pub destroy_failed_jobs: bool,
    /// How long a stopping worker waits for running jobs before unlocking them.
    pub shutdown_timeout: Duration,
    /// How often (across all workers) to look for locked rows whose locker is not a
    /// registered worker (from a worker that was removed, or an older dj).
    pub rescue_interval: Duration,
    /// A worker whose heartbeat is older than this is dead, on any host: its started jobs
    /// are charged one attempt and its unstarted claims released. Workers heartbeat six
    /// times per timeout.
    pub heartbeat_timeout: Duration,
    /// How long to wait at start for a database that does not answer; `None` (the default)
    /// waits until it answers or the worker is stopped.
    pub database_wait: Option<Duration>,
    /// Rows failed for good longer ago than this are deleted by the elected maintenance
    /// worker (failed rows are kept unless `destroy_failed_jobs(true)`, `--delete-failed`).
    pub keep_failed_for: Duration,
    /// Results ([`crate::Context::set_result`], and the errors of failed jobs whose rows were
    /// deleted) stored longer ago than this are deleted by the elected maintenance worker.
    pub result_retention: Duration,
    /// How often a job may snooze ([`crate::JobError::snooze`]) before a snooze counts as a
    /// failed attempt.
    pub max_snoozes: u32,
    /// Whether this worker fires recurring jobs ([`crate::Schedule`], `#[job(cron = ..)]`)
    /// and registers the ones of its code at start.
    pub cron: bool,
    /// Whether a PostgreSQL worker of every queue may claim batches of short jobs in the
    /// fast lane: row locks held in a transaction open while they run (100 ms at most), one
    /// row write per job instead of two. See the README's "The fast lane".
    pub fast_lane: bool,
    /// How often the elected maintenance worker rebuilds `delayed_jobs`' indexes with
    /// `REINDEX INDEX CONCURRENTLY` (PostgreSQL; `None`, the default: never). After a held
    /// MVCC horizon the indexes keep the pages its dead entries filled; a rebuild returns them.
    pub reindex_every: Option<Duration>,
    /// Priority aging (`None`, the default: off): every this long, the elected maintenance
    /// worker raises by one step (priority - 1) the jobs that have been ready this long and
    /// wait behind a better priority, the most starved first, at most 10,000 a pass; so a
    /// low priority cannot wait forever behind a stream of higher ones.
    pub priority_aging: Option<Duration>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name_prefix: None,
            queues: Vec::new(),
            min_priority: None,
            max_priority: None,
            sleep_delay: Duration::from_secs(5),
            read_ahead: 1000,
            concurrency: 1,
            exit_on_complete: false,
            max_attempts: 25,
            max_run_time: Duration::from_secs(4 * 60 * 60),
            destroy_failed_jobs: false,
            shutdown_timeout: Duration::from_secs(25),
            rescue_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(30),
            database_wait: None,
            keep_failed_for: Duration::from_secs(14 * 24 * 60 * 60),
            result_retention: Duration::from_secs(24 * 60 * 60),
            max_snoozes: 100,
            cron: true,
            fast_lane: true,
            reindex_every: None,
            priority_aging: None,
        }
    }
}

/// What a worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Jobs performed successfully.
    pub succeeded: u64,
    /// Failed attempts (including permanent failures and unloadable jobs).
    pub failed: u64,
    /// Jobs still running at the shutdown timeout, unlocked for another worker.
    pub interrupted: u64,
    /// Attempts that ended in a snooze (rescheduled, no attempt counted).
    pub snoozed: u64,
    /// From the start of `run`/`work_off` to its return.
    pub elapsed: Duration,
}

/// A job worker: claims jobs from a [`Db`] and performs them.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// # use dj::{Job, Perform};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Job, Serialize, Deserialize)]
/// # struct Tidy { n: i64 }
/// # impl Perform for Tidy {
/// #     type Error = std::io::Error;
/// #     fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> { Ok(()) }
/// # }
/// # fn main() -> Result<(), dj::Error> {
/// # let dir = std::env::temp_dir().join(format!("dj-doc-worker-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display()))?;
/// # db.migrate()?;
/// dj::enqueue_many(&db, (0..3).map(|n| Tidy { n }))?;
///
/// let finished = Arc::new(Mutex::new(0));
/// let counter = finished.clone();
/// let worker = dj::Worker::new(db)
///     .concurrency(4)                         // setters compose, in any order
///     .read_ahead(10)
///     .sleep_delay(Duration::from_millis(500))
///     .on_event(move |event| {
///         if let dj::Event::JobFinished { .. } = event {
///             *counter.lock().unwrap() += 1;
///         }
///     });
/// let report = worker.work_off(100)?;         // or `run()` until its stop flag is set
/// assert_eq!((report.succeeded, *finished.lock().unwrap()), (3, 3));
/// # Ok(())
/// # }
/// ```
///
/// The worker logs delayed_job's lines through `tracing`; install a subscriber
/// (`tracing_subscriber::fmt::init()`) to see them.
#[derive(Debug)]
pub struct Worker {
    db: Db,
    config: WorkerConfig,
    state: StateSource,
    stop: StopFlag,
    name: heartbeat::NameLease,
    listener: Option<events::Listener>,
}

/// Generates, from one list, a setter on [`WorkerConfig`] (`WorkerConfig::default().concurrency(4)`) and
/// the same setter on [`Worker`] (`Worker::new(db).concurrency(4)`). Each sets one field and
/// leaves the others as they are, so setters compose in any order.
macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $field:ident($value:ident: $ty:ty) => $set:expr; )*) => {
        impl WorkerConfig {
            $(
                $(#[doc = $doc])*
                pub fn $field(mut self, $value: $ty) -> Self {
                    self.$field = $set;
                    self
                }
            )*
        }
        impl Worker {
            $(
                $(#[doc = $doc])*
                pub fn $field(mut self, $value: $ty) -> Self {
                    self.config = self.config.$field($value);
                    self
                }
            )*
        }
    };
}

settings! {
    /// Only these queues (the default, none, is every queue, jobs with no queue included).
    queues(queues: impl IntoIterator<Item = impl Into<String>>) =>
        queues.into_iter().map(Into::into).collect();
    /// Only jobs with `priority >= min`.
    min_priority(min: i32) => Some(min);
    /// Only jobs with `priority <= max`.
    max_priority(max: i32) => Some(max);
    /// How long to wait for work when none is ready (5 s; LISTEN/NOTIFY wakes a PostgreSQL
    /// worker sooner).
    sleep_delay(delay: Duration) => delay;
    /// The most jobs held claimed beyond the running ones (1,000); within it, what the
    /// executors start within 100 ms at the observed pace.
    read_ahead(n: usize) => n;
    /// Jobs run at once in this process (1; at least 1).
    concurrency(n: usize) => n.max(1);
    /// Exit when no job is ready instead of waiting (false).
    exit_on_complete(exit: bool) => exit;
    /// Runs in all before a job fails permanently (25; a job's own setting wins).
    max_attempts(n: u32) => n;
    /// How long one run may take (4 h; a job's own setting wins).
    max_run_time(limit: Duration) => limit;
    /// Delete permanently failed jobs (true) or keep them with `failed_at` (false, the
    /// default, until `keep_failed_for`; a job's own setting wins).
    destroy_failed_jobs(destroy: bool) => destroy;
    /// How long a stopping worker waits for running jobs before unlocking them (25 s).
    shutdown_timeout(timeout: Duration) => timeout;
    /// How often, across all workers, to look for rows locked by unregistered names (30 s).
    rescue_interval(interval: Duration) => interval;
    /// A worker silent this long is dead, on any host (30 s; use one value per database).
    heartbeat_timeout(timeout: Duration) => timeout;
    /// How long to wait at start for a database that does not answer (the default waits
    /// until it answers or the worker is stopped).
    database_wait(bound: Duration) => Some(bound);
    /// Failed rows older than this are pruned by the elected maintenance worker (14 days).
    keep_failed_for(age: Duration) => age;
    /// Stored results older than this are pruned by the elected maintenance worker (1 day).
    result_retention(age: Duration) => age;
    /// Snoozes a job may take before one more counts as a failed attempt (100).
    max_snoozes(n: u32) => n;
    /// Fire recurring jobs and register the ones of this binary's code (true).
    cron(enabled: bool) => enabled;
    /// Claim batches of short jobs in the fast lane on PostgreSQL (true).
    fast_lane(enabled: bool) => enabled;
    /// Rebuild the table's indexes this often, concurrently, on PostgreSQL (never).
    reindex_every(every: Duration) => Some(every);
    /// Raise the priority of jobs ready this long behind better priorities by one step, this
    /// often (never).
    priority_aging(every: Duration) => Some(every);
}

impl WorkerConfig {
    /// How often a worker heartbeats (and a rescuer looks for dead workers): six times per
    /// `heartbeat_timeout`, between 100 ms and 5 s.
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        (self.heartbeat_timeout / 6).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }
    /// Prefix of the worker name (`PREFIX host:HOST pid:PID`).
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = Some(prefix.into());
        self
    }
}

impl Worker {
    /// A worker with default settings on `db`; change them with the setters, in any order.
    pub fn new(db: Db) -> Self {
        Worker::with_config(db, WorkerConfig::default())
    }
    /// A worker with these settings (the CLI builds a [`WorkerConfig`] from its flags); the setters
    /// still change single settings afterwards.
    pub fn with_config(db: Db, config: WorkerConfig) -> Self {
        let name = heartbeat::NameLease::new(&worker_name(config.name_prefix.as_deref()));
        Worker {
            db,
            config,
            state: StateSource::Ready(Arc::new(State::new())),
            stop: StopFlag::new(),
            name,
            listener: None,
        }
    }
    /// Calls `listener` with every [`Event`] of this worker (started, idle, each job's start
    /// and end with its runtime, stopping, stopped), on the worker's threads: keep it quick.
    pub fn on_event(mut self, listener: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.listener = Some(events::Listener(Arc::new(listener)));
        self
    }
    /// Prefix of the worker name (`PREFIX host:HOST pid:PID`).
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config = self.config.name_prefix(prefix);
        self.name
            .rename(&worker_name(self.config.name_prefix.as_deref()));
        self
    }
    /// The application state jobs reach through [`crate::Context::get`], built already.
    /// A state that needs the worker's tokio runtime (a sqlx pool) is built by a state
    /// function instead: [`Worker::state_with`].
    pub fn state(mut self, state: State) -> Self {
        self.state = StateSource::Ready(Arc::new(state));
        self
    }
    /// The application state, built by `state` ([`StateFn`]: `fn() -> State`,
    /// `fn(Setup) -> Result<State, E>` or `async fn(Setup) -> Result<State, E>`) at the start
    /// of each [`run`](Worker::run) or [`work_off`](Worker::work_off), inside the tokio
    /// runtime the worker's async jobs run on, before it claims a job. A pool built there
    /// serves every job of that run, and is dropped when the run ends. An `Err` ends the
    /// run at once with [`crate::Error::State`], nothing claimed. Replaces an earlier
    /// [`Worker::state`].
    ///
    /// ```
    /// # fn main() -> Result<(), dj::Error> {
    /// # let dir = std::env::temp_dir().join(format!("dj-doc-state-with-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display()))?;
    /// # db.migrate()?;
    /// /// Stands for `sqlx::PgPool`, built by `PgPool::connect(setup.database_url()).await?`.
    /// struct Pool(String);
    ///
    /// async fn state(setup: dj::Setup) -> Result<dj::State, std::io::Error> {
    ///     tokio::task::yield_now().await;        // runs inside the worker's runtime
    ///     Ok(dj::State::new().with(Pool(setup.database_url().to_owned())))
    /// }
    ///
    /// let report = dj::Worker::new(db).state_with(state).work_off(10)?;
    /// # assert_eq!(report.succeeded, 0);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Sync jobs and hooks run with that runtime entered too: a sync job reaches an async
    /// pool with `tokio::runtime::Handle::current().block_on(query.execute(pool))`.
    pub fn state_with<M>(mut self, state: impl StateFn<M>) -> Self {
        self.state = match state.into_builder() {
            Some(build) => StateSource::Build(build),
            None => StateSource::Ready(Arc::new(State::new())),
        };
        self
    }
    /// The flag that stops this worker; hand it to a signal handler or another thread.
    pub fn stop_flag(&self) -> StopFlag {
        self.stop.clone()
    }
    /// This worker's name, as stored in `locked_by` and `dj_workers`: unique in this process
    /// (a second worker of the process is `NAME #2`, and so on). A worker that registers again
    /// after it was declared dead does so under a new `#N` name.
    pub fn name(&self) -> &str {
        &self.name.0
    }
    /// The settings in force.
    pub fn settings(&self) -> &WorkerConfig {
        &self.config
    }

    /// Works until the stop flag is set (or, with `exit_on_complete`, until no job is ready).
    pub fn run(&self) -> Result<Report> {
        runtime::run(self, None)
    }

    /// Performs up to `max` jobs that are ready now, then returns (delayed_job's
    /// `work_off`). Jobs that fail are rescheduled as usual.
    pub fn work_off(&self, max: u64) -> Result<Report> {
        runtime::run(self, Some(max))
    }
}

/// `[prefix ]host:HOST pid:PID`, delayed_job's worker name.
pub fn worker_name(prefix: Option<&str>) -> String {
    let pid = std::process::id();
    let host = hostname();
    match prefix.filter(|p| !p.is_empty()) {
        Some(prefix) => format!("{prefix} host:{host} pid:{pid}"),
        None => format!("host:{host} pid:{pid}"),
    }
}

/// This machine's host name.
#[doc(hidden)]
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname NUL-terminates or fails.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// What the roles of one running worker share.
struct Shared {
    db: Db,
    config: WorkerConfig,
    state: Arc<State>,
    stop: StopFlag,
    /// The name this worker is registered under now; it changes only when the worker was
    /// declared dead and registers again.
    name: RwLock<Arc<str>>,
    slots: slots::Slots,
    beat: heartbeat::Beat,
    /// The runtime async jobs run on (present when any registered job is async, or a state
    /// function builds the state).
    async_runtime: Option<tokio::runtime::Handle>,
    listener: Option<events::Listener>,
    started: std::time::Instant,
    /// How fast jobs finish: how far ahead to claim.
    pace: pace::Pace,
    /// The fast lanes open now.
    lanes: lane::Lanes,
    /// The job types a fast lane leaves to the ordinary claim (see `ClaimParams`).
    lane_skips: Vec<&'static str>,
    /// What running jobs report through `Context::progress`, until written.
    progress: Arc<crate::progress::ProgressBoard>,
    succeeded: AtomicU64,
    failed: AtomicU64,
    interrupted: AtomicU64,
    snoozed: AtomicU64,
}

impl Shared {
    fn name(&self) -> Arc<str> {
        self.name.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Enters the worker's tokio runtime, if it has one, on this thread until the guard is
    /// dropped: sync jobs and hooks run there, so that they can reach an async pool of the
    /// state through `Handle::current()`.
    fn enter_runtime(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
        self.async_runtime.as_ref().map(|runtime| runtime.enter())
    }

    fn report(&self) -> Report {
        Report {
            succeeded: self.succeeded.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            interrupted: self.interrupted.load(Ordering::SeqCst),
            snoozed: self.snoozed.load(Ordering::SeqCst),
            elapsed: self.started.elapsed(),
        }
    }

    /// Tells the listener, if there is one (the event is built only then).
    fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(listener) = &self.listener {
            (listener.0)(&event());
        }
    }

    /// `[Worker(name)] ` in front of every log line, as delayed_job writes it.
    fn say(&self, text: std::fmt::Arguments<'_>) {
        tracing::info!(target: "dj", "[Worker({})] {}", self.name(), text);
    }

    fn say_error(&self, text: std::fmt::Arguments<'_>) {
        tracing::error!(target: "dj", "[Worker({})] {}", self.name(), text);
    }
}

/// `Job NAME (id=ID) (queue=Q)`, delayed_job's way of naming a job in logs.
fn job_label(name: &str, id: JobId, queue: Option<&str>) -> String {
    match queue {
        Some(q) => format!("Job {name} (id={id}) (queue={q})"),
        None => format!("Job {name} (id={id})"),
    }
}
