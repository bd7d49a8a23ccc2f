//! Which rows a listing or a bulk command applies to, and in what order.

use super::{JobId, JobState};

/// Which rows a listing or a bulk command applies to. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Rows in this state (by the database's clock).
    pub state: Option<JobState>,
    /// Rows of this queue.
    pub queue: Option<String>,
    /// Rows of this registered job name.
    pub name: Option<String>,
    /// The row with this id.
    pub id: Option<JobId>,
    /// Rows whose id is in this range: a window of the table, served by the primary key (the
    /// dashboard's text search reads the newest rows this way).
    pub ids: Option<std::ops::RangeInclusive<JobId>>,
    /// Rows locked by this worker name.
    pub locked_by: Option<String>,
    /// The rows of this workflow's steps (those in `delayed_jobs`: held steps have none yet).
    pub workflow: Option<super::WorkflowId>,
    /// At most this many rows (listings only).
    pub limit: Option<i64>,
    /// Skip this many rows first (listings with a limit only: pages).
    pub offset: Option<i64>,
    /// Rows whose handler or last_error contains this text, in any case.
    pub search: Option<String>,
    /// The order of a listing.
    pub order: Order,
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// By id, oldest first (the default).
    #[default]
    Id,
    /// By id, newest first.
    IdDesc,
    /// By run_at, soonest first.
    RunAt,
    /// By run_at, latest first.
    RunAtDesc,
}
