//! A row of `delayed_jobs` and the state it is in.

use std::time::SystemTime;

use super::JobId;

/// One row of `delayed_jobs`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    /// The row's id, as `enqueue` returned it.
    pub id: JobId,
    /// Lower runs first.
    pub priority: i32,
    /// Failed attempts so far.
    pub attempts: i32,
    /// The job as JSON: `{"job": NAME, "args": {...}}`.
    pub handler: String,
    /// The last failed attempt's error, with its cause chain.
    pub last_error: Option<String>,
    /// Not before this time.
    pub run_at: SystemTime,
    /// When a worker claimed it (`None`: not claimed).
    pub locked_at: Option<SystemTime>,
    /// When it failed for good (`None`: it has not).
    pub failed_at: Option<SystemTime>,
    /// The worker holding it.
    pub locked_by: Option<String>,
    /// Its queue (`None`: no queue).
    pub queue: Option<String>,
    /// When it was enqueued.
    pub created_at: SystemTime,
    /// When dj last changed it.
    pub updated_at: SystemTime,
    /// The registered job name (also inside `handler`).
    pub name: String,
    /// The job's own `max_run_time` in seconds, if it set one.
    pub max_run_time: Option<i32>,
    /// When the worker holding the lock recorded that the job started (`None`: no start
    /// recorded during this lock). Only a recorded start is charged when a worker dies.
    pub started_at: Option<SystemTime>,
    /// How often a worker died holding this job before recording its start.
    pub crashes: i32,
    /// How often the job snoozed (asked to run later without counting an attempt).
    pub snoozes: i32,
    /// The key it holds as a unique job (`None`: not unique, or no longer holding it).
    pub unique_key: Option<String>,
    /// The key whose running jobs are limited (`concurrency`), if any.
    pub concurrency_key: Option<String>,
}

impl JobRow {
    /// A claimed row of job `Job` with this id, at the epoch, for unit tests.
    #[cfg(test)]
    pub(crate) fn claimed_for_test(id: super::JobId) -> JobRow {
        let at = SystemTime::UNIX_EPOCH;
        JobRow {
            id,
            priority: 0,
            attempts: 0,
            handler: String::new(),
            last_error: None,
            run_at: at,
            locked_at: Some(at),
            failed_at: None,
            locked_by: None,
            queue: None,
            created_at: at,
            updated_at: at,
            name: "Job".to_owned(),
            max_run_time: None,
            started_at: None,
            crashes: 0,
            snoozes: 0,
            unique_key: None,
            concurrency_key: None,
        }
    }

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
///                                                                    (kept until retention, or
///                                                                   deleted: destroy_failed_jobs)
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
    /// Every state, in the order of a job's life (as the dashboard and `/metrics` list them).
    pub const ALL: [JobState; 4] = [
        JobState::Ready,
        JobState::Scheduled,
        JobState::Running,
        JobState::Failed,
    ];
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
