//! What a worker tells a program that watches it: [`Worker::on_event`](super::Worker::on_event)
//! hears every [`Event`] as it happens, on the worker's own threads, so tests and benchmarks
//! can wait for "idle" or "job finished" instead of sleeping, and an app can count or time
//! jobs without parsing logs. (For logs, install a `tracing` subscriber: a library worker
//! writes delayed_job's lines through `tracing`, and is silent without one.)

use std::time::Duration;

use super::Report;
use crate::model::JobId;

/// Something a worker did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Registered and about to claim, under this name.
    Started {
        /// The name it registered under (`locked_by` of its rows).
        worker: String,
    },
    /// Found no ready job with none running: waiting for work (once per idle stretch).
    Idle,
    /// A claim took this many jobs (more than none).
    Claimed {
        /// How many rows the claim locked.
        count: usize,
    },
    /// A job's attempt began.
    JobStarted {
        /// The row's id.
        id: JobId,
        /// The job's registered name.
        name: String,
        /// Its queue.
        queue: Option<String>,
        /// Attempts before this one.
        attempts: i32,
    },
    /// A job's attempt ended.
    JobFinished {
        /// The row's id.
        id: JobId,
        /// The job's registered name.
        name: String,
        /// How the attempt ended.
        outcome: JobOutcome,
        /// How long the attempt ran.
        runtime: Duration,
    },
    /// Stopping: no more claims; running jobs get the shutdown timeout.
    Stopping,
    /// Done: what it did, and for how long.
    Stopped {
        /// Its counts and elapsed time, as `run`/`work_off` return them.
        report: Report,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobOutcome {
    /// Performed: the row is deleted.
    Succeeded,
    /// Failed with attempts left: rescheduled.
    Retried,
    /// Failed for good: deleted, or kept with `failed_at`.
    Failed,
    /// Ran past its `max_run_time`: the attempt was recorded as expired.
    Expired,
    /// The worker lost its lock meanwhile (it was declared dead): nothing recorded.
    Lost,
    /// The job snoozed: rescheduled, no attempt counted.
    Snoozed,
    /// The job was cancelled while running: failed for good, kept.
    Cancelled,
    /// Still running at the shutdown timeout: unlocked for another worker, not an attempt.
    Interrupted,
}

impl JobOutcome {
    /// The lowercase name metrics label it with.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Retried => "retried",
            JobOutcome::Failed => "failed",
            JobOutcome::Expired => "expired",
            JobOutcome::Lost => "lost",
            JobOutcome::Snoozed => "snoozed",
            JobOutcome::Cancelled => "cancelled",
            JobOutcome::Interrupted => "interrupted",
        }
    }
}

/// The listener [`Worker::on_event`](super::Worker::on_event) installs.
#[derive(Clone)]
pub(crate) struct Listener(pub(crate) std::sync::Arc<dyn Fn(&Event) + Send + Sync>);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}
