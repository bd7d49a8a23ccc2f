//! What the store reports about workers and queues, and what a cancel did.

use std::time::SystemTime;

use super::JobState;

/// A worker's entry in `dj_workers`, as `stats` and `status` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerRow {
    /// The name it locks rows with (`locked_by`).
    pub name: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id on that host.
    pub pid: i32,
    /// The queues it works (`None`: every queue).
    pub queues: Option<String>,
    /// dj's version.
    pub version: String,
    /// When it registered (by the database's clock).
    #[serde(serialize_with = "unix_seconds")]
    pub started_at: SystemTime,
    /// Its last heartbeat (by the database's clock).
    #[serde(serialize_with = "unix_seconds")]
    pub heartbeat_at: SystemTime,
    /// Jobs it holds locked (claimed or running): from `delayed_jobs` when read through
    /// [`crate::Db::workers`], so that it adds up with the queues' `running` counts.
    pub running: i32,
}

fn unix_seconds<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    s.serialize_f64(secs)
}

/// What [`crate::Db::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cancel {
    /// The job was waiting (ready or scheduled): it failed for good at once as "cancelled"
    /// (kept, so `retry` can bring it back).
    Dequeued,
    /// The job is running: its worker stops it within a second (`Context::is_cancelled`, an
    /// async job's future dropped) and fails it for good as "cancelled".
    Requested,
    /// No such job, or it has failed already.
    NotFound,
}

/// Counts for one queue, as `stats` prints them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct QueueStats {
    /// The queue (`None`: jobs with no queue).
    pub queue: Option<String>,
    /// Jobs whose `run_at` has passed, waiting for a worker.
    pub ready: i64,
    /// Jobs waiting for their `run_at`.
    pub scheduled: i64,
    /// Jobs locked by a worker.
    pub running: i64,
    /// Jobs failed for good (kept with `failed_at`).
    pub failed: i64,
    /// Seconds since the oldest ready job's `run_at`.
    pub oldest_ready_age: Option<f64>,
}

impl QueueStats {
    /// How many of the queue's jobs are in `state` (the dashboard and `/metrics` list the
    /// states in [`JobState::ALL`]'s order, each with this count).
    pub fn count(&self, state: JobState) -> i64 {
        match state {
            JobState::Ready => self.ready,
            JobState::Scheduled => self.scheduled,
            JobState::Running => self.running,
            JobState::Failed => self.failed,
        }
    }
}

/// Succeeded and failed attempts over the last `minutes` before `now`, from per-minute
/// throughput rows (minute, succeeded, failed) as [`crate::Db::throughput`] gives them.
#[cfg(feature = "cli")]
pub(crate) fn throughput_within(
    rows: &[(SystemTime, i64, i64)],
    now: SystemTime,
    minutes: u64,
) -> (i64, i64) {
    let since = now - std::time::Duration::from_secs(minutes * 60);
    rows.iter()
        .filter(|(minute, _, _)| *minute >= since)
        .fold((0, 0), |(s, f), (_, ds, df)| (s + ds, f + df))
}
