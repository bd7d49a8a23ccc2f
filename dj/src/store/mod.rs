//! The store: one trait that every backend implements, with noun-first methods taking
//! parameter structs. The worker, the CLI and `dj::testing` talk only to this trait; the same
//! conformance suite (`tests/conformance`) runs against every backend.

use std::time::{Duration, SystemTime};

use crate::enqueue::{JobId, NewJob};
use crate::error::Result;

pub(crate) mod filter;
pub(crate) mod pool;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// One row of `delayed_jobs`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: JobId,
    pub priority: i32,
    pub attempts: i32,
    pub handler: String,
    pub last_error: Option<String>,
    pub run_at: SystemTime,
    pub locked_at: Option<SystemTime>,
    pub failed_at: Option<SystemTime>,
    pub locked_by: Option<String>,
    pub queue: Option<String>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    /// The registered job name (also inside `handler`).
    pub name: String,
    /// The job's own `max_run_time` in seconds, if it set one.
    pub max_run_time: Option<i32>,
}

impl JobRow {
    /// The state this row is in, by the given clock.
    pub fn state(&self, now: SystemTime) -> JobState {
        if self.failed_at.is_some() {
            JobState::Failed
        } else if self.locked_at.is_some() {
            JobState::Running
        } else if self.run_at <= now {
            JobState::Ready
        } else {
            JobState::Scheduled
        }
    }
}

/// Where a job is in its life.
///
/// ```text
///  enqueue ──► scheduled ──(run_at passes)──► ready ──(claim)──► running ──(ok)──► deleted
///                  ▲                                                │
///                  └──────────(failed attempt, attempts left)───────┤
///                                                                   └─(attempts out)─► failed
///                                                                        (or deleted, per
///                                                                      destroy_failed_jobs)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    /// `run_at` has passed; waiting for a worker.
    Ready,
    /// Waiting for its `run_at`.
    Scheduled,
    /// Locked by a worker.
    Running,
    /// Failed permanently (`failed_at` set).
    Failed,
}

impl JobState {
    /// The lowercase name used by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Failed => "failed",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ready" => Ok(JobState::Ready),
            "scheduled" => Ok(JobState::Scheduled),
            "running" | "locked" => Ok(JobState::Running),
            "failed" => Ok(JobState::Failed),
            other => Err(format!(
                "unknown state `{other}`; expected one of: ready, scheduled, running, failed"
            )),
        }
    }
}

/// Which rows a listing or a bulk command applies to. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub queue: Option<String>,
    pub name: Option<String>,
    pub id: Option<JobId>,
    /// Rows locked by this worker name.
    pub locked_by: Option<String>,
    pub limit: Option<i64>,
}

/// What a worker may claim.
#[derive(Debug, Clone)]
pub(crate) struct ClaimParams<'a> {
    pub worker: &'a str,
    /// Empty: every queue, including none.
    pub queues: &'a [String],
    pub min_priority: Option<i32>,
    pub max_priority: Option<i32>,
    pub limit: usize,
}

/// A failed attempt with attempts left: back to scheduled, unlocked.
#[derive(Debug, Clone)]
pub(crate) struct Retry {
    pub id: JobId,
    pub attempts: i32,
    pub delay: Duration,
    pub last_error: String,
    /// Unlock the row (false: keep the lock, the job is still running past its max_run_time).
    pub release: bool,
}

/// A permanent failure: the row is deleted or gets `failed_at`.
#[derive(Debug, Clone)]
pub(crate) struct Fail {
    pub id: JobId,
    pub attempts: i32,
    pub last_error: String,
    pub destroy: bool,
}

/// Counts for one queue, as `stats` prints them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct QueueStats {
    pub queue: Option<String>,
    pub ready: i64,
    pub scheduled: i64,
    pub running: i64,
    pub failed: i64,
    /// Seconds since the oldest ready job's `run_at`.
    pub oldest_ready_age: Option<f64>,
}

/// The backend interface. Implemented by PostgreSQL and SQLite; not for applications.
pub(crate) trait Store: Send + Sync + 'static {
    /// `postgres://...` or `sqlite:...`, with any password hidden.
    fn describe(&self) -> String;
    /// Creates or upgrades the table and its indexes; returns the versions applied.
    fn migrate(&self) -> Result<Vec<u32>>;
    /// Fails with [`crate::Error::MissingTable`] unless the table has every column dj needs.
    fn check_schema(&self) -> Result<()>;
    /// Fails with [`crate::Error::ReadOnly`] when this process cannot write to the database.
    /// The default assumes it can (a PostgreSQL role without write grants fails on its
    /// first claim instead).
    fn check_writable(&self) -> Result<()> {
        Ok(())
    }
    /// The database's clock.
    fn now(&self) -> Result<SystemTime>;

    fn job_insert_many(&self, rows: &[NewJob]) -> Result<Vec<JobId>>;
    /// Locks up to `limit` ready jobs for the worker, in priority then run_at order.
    fn job_claim(&self, params: &ClaimParams<'_>) -> Result<Vec<JobRow>>;
    /// Deletes finished jobs still locked by `worker`.
    fn job_complete(&self, worker: &str, ids: &[JobId]) -> Result<()>;
    fn job_retry(&self, worker: &str, retries: &[Retry]) -> Result<()>;
    fn job_fail(&self, worker: &str, fails: &[Fail]) -> Result<()>;
    /// Releases locks without counting an attempt (interrupted at shutdown).
    fn job_unlock(&self, worker: &str, ids: &[JobId]) -> Result<u64>;
    /// Refreshes `locked_at` of jobs still running, so their leases do not expire.
    fn job_touch(&self, worker: &str, ids: &[JobId]) -> Result<()>;
    /// Releases every lock held by one worker name; returns how many.
    fn job_unlock_worker(&self, worker: &str) -> Result<u64>;

    fn job_list(&self, filter: &JobFilter) -> Result<Vec<JobRow>>;
    fn job_count(&self, filter: &JobFilter) -> Result<i64>;
    fn job_delete(&self, filter: &JobFilter) -> Result<u64>;
    /// Makes matching failed (or scheduled) jobs ready now, with attempts reset.
    fn job_retry_now(&self, filter: &JobFilter) -> Result<u64>;
    fn job_stats(&self) -> Result<Vec<QueueStats>>;

    /// Blocks until new jobs may be ready or `timeout` passes. Returns true if woken early.
    /// The default just sleeps: polling.
    fn wait_for_jobs(&self, timeout: Duration, stop: &crate::worker::StopFlag) -> bool {
        stop.sleep(timeout);
        false
    }
}

/// Claimed rows in the order they should start: priority, then run_at (then id). `RETURNING`
/// gives no order of its own.
pub(crate) fn claim_order(jobs: &mut [JobRow]) {
    jobs.sort_by_key(|j| (j.priority, j.run_at, j.id));
}

/// Every migration's SQL in order: what `schema` prints.
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) fn schema_of(migrations: &[(u32, &str)]) -> String {
    migrations
        .iter()
        .map(|(_, sql)| *sql)
        .collect::<Vec<_>>()
        .join("\n")
}
