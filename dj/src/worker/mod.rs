//! The worker, split by role as in River:
//! - `producer`: claims ready jobs in batches and hands them to executors; waits on
//!   LISTEN/NOTIFY or polls when idle;
//! - `executor`: runs one job at a time per slot (`--concurrency` slots), hooks and panics
//!   included, and decides the outcome;
//! - `completer`: writes outcomes, many per statement, retrying until the database takes
//!   them, so a finished job is never run again because a delete failed;
//! - `rescuer`: enforces `max_run_time`, keeps leases of overrunning jobs alive, and frees
//!   jobs whose worker died.

mod completer;
mod executor;
mod producer;
mod rescuer;
pub mod signals;
mod stop;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use rescuer::{parse_worker_name, process_alive, Staleness};
pub use stop::StopFlag;

use crate::context::State;
use crate::db::Db;
use crate::enqueue::JobId;
use crate::error::Result;

/// A worker's settings. Each worker has its own; nothing is process-global.
#[derive(Debug, Clone)]
pub struct Config {
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
    /// How many jobs to hold claimed beyond the running ones (claimed per round trip when
    /// work is plentiful).
    pub read_ahead: usize,
    /// Jobs run at once in this process.
    pub concurrency: usize,
    /// Exit when no job is ready instead of waiting.
    pub exit_on_complete: bool,
    /// Runs in all before a job fails permanently (a job's own setting wins).
    pub max_attempts: u32,
    /// How long one run may take (a job's own setting wins); also a dead worker's lock lifetime.
    pub max_run_time: Duration,
    /// Delete permanently failed jobs (true) or keep them with `failed_at` (false).
    pub destroy_failed_jobs: bool,
    /// How long a stopping worker waits for running jobs before unlocking them.
    pub shutdown_timeout: Duration,
    /// How often to look for expired locks and dead workers' locks.
    pub rescue_interval: Duration,
    /// How long to wait at start for a database that does not answer; `None` (the default)
    /// waits until it answers or the worker is stopped.
    pub database_wait: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name_prefix: None,
            queues: Vec::new(),
            min_priority: None,
            max_priority: None,
            sleep_delay: Duration::from_secs(5),
            read_ahead: 5,
            concurrency: 1,
            exit_on_complete: false,
            max_attempts: 25,
            max_run_time: Duration::from_secs(4 * 60 * 60),
            destroy_failed_jobs: true,
            shutdown_timeout: Duration::from_secs(25),
            rescue_interval: Duration::from_secs(30),
            database_wait: None,
        }
    }
}

/// What a worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Jobs performed successfully.
    pub succeeded: u64,
    /// Failed attempts (including permanent failures and unloadable jobs).
    pub failed: u64,
    /// Jobs still running at the shutdown timeout, unlocked for another worker.
    pub interrupted: u64,
}

/// A job worker: claims jobs from a [`Db`] and performs them.
#[derive(Debug)]
pub struct Worker {
    db: Db,
    config: Config,
    state: Arc<State>,
    stop: StopFlag,
    name: String,
}

impl Worker {
    /// A worker with default settings on `db`.
    pub fn new(db: Db) -> Self {
        let config = Config::default();
        let name = worker_name(config.name_prefix.as_deref());
        Worker {
            db,
            config,
            state: Arc::new(State::new()),
            stop: StopFlag::new(),
            name,
        }
    }
    /// Replaces all settings.
    pub fn config(mut self, config: Config) -> Self {
        self.name = worker_name(config.name_prefix.as_deref());
        self.config = config;
        self
    }
    /// The application state jobs reach through [`crate::Context::get`].
    pub fn state(mut self, state: State) -> Self {
        self.state = Arc::new(state);
        self
    }
    /// Only these queues.
    pub fn queues<I: IntoIterator<Item = S>, S: Into<String>>(mut self, queues: I) -> Self {
        self.config.queues = queues.into_iter().map(Into::into).collect();
        self
    }
    /// Jobs run at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n.max(1);
        self
    }
    /// The flag that stops this worker; hand it to a signal handler or another thread.
    pub fn stop_flag(&self) -> StopFlag {
        self.stop.clone()
    }
    /// This worker's name, as stored in `locked_by`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The settings in force.
    pub fn settings(&self) -> &Config {
        &self.config
    }

    /// Works until the stop flag is set (or, with `exit_on_complete`, until no job is ready).
    pub fn run(&self) -> Result<Report> {
        producer::run(self, None)
    }

    /// Performs up to `max` jobs that are ready now, then returns (delayed_job's
    /// `work_off`). Jobs that fail are rescheduled as usual.
    pub fn work_off(&self, max: u64) -> Result<Report> {
        producer::run(self, Some(max))
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

/// A job being performed, as the rescuer sees it.
struct Running {
    id: JobId,
    name: String,
    deadline: Instant,
    max_run_time: Duration,
    /// Set by the rescuer when the job overran; the executor then only releases its lock.
    expired: Arc<AtomicBool>,
    job: Arc<dyn crate::registry::LoadedJob>,
    row: crate::store::JobRow,
}

/// What the producer, executors, completer and rescuer share.
struct Shared {
    db: Db,
    config: Config,
    state: Arc<State>,
    stop: StopFlag,
    name: String,
    /// Claimed jobs not yet finished by an executor (waiting or running).
    inflight: Mutex<usize>,
    inflight_changed: Condvar,
    running: Mutex<HashMap<JobId, Running>>,
    /// Overrunning jobs whose leases the rescuer keeps alive until their thread returns.
    fenced: Mutex<HashMap<JobId, Duration>>,
    /// Every job this worker has claimed and whose outcome is not yet written: what it may
    /// legitimately hold locks on.
    held: Mutex<HashSet<JobId>>,
    succeeded: AtomicU64,
    failed: AtomicU64,
    interrupted: AtomicU64,
}

impl Shared {
    fn finish_one(&self) {
        let mut n = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        self.inflight_changed.notify_all();
    }

    fn inflight(&self) -> usize {
        *self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until fewer than `below` jobs are in flight, or `timeout` passes.
    fn wait_inflight_below(&self, below: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut n = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= below {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            n = self
                .inflight_changed
                .wait_timeout(n, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *n
    }

    fn report(&self) -> Report {
        Report {
            succeeded: self.succeeded.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            interrupted: self.interrupted.load(Ordering::SeqCst),
        }
    }

    /// `[Worker(name)] ` in front of every log line, as delayed_job writes it.
    fn say(&self, text: std::fmt::Arguments<'_>) {
        tracing::info!(target: "dj", "[Worker({})] {}", self.name, text);
    }

    fn say_error(&self, text: std::fmt::Arguments<'_>) {
        tracing::error!(target: "dj", "[Worker({})] {}", self.name, text);
    }
}

/// `Job NAME (id=ID) (queue=Q)`, delayed_job's way of naming a job in logs.
fn job_label(name: &str, id: JobId, queue: Option<&str>) -> String {
    match queue {
        Some(q) => format!("Job {name} (id={id}) (queue={q})"),
        None => format!("Job {name} (id={id})"),
    }
}
