//! How a finished job leaves the worker: what the executors, the watchdog and the lanes hand
//! to the completer.

use crate::model::JobId;
use crate::store::{Fail, Recorded, Retry};

/// How a finished job leaves the worker.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Succeeded: delete the row.
    Complete(JobId),
    /// Succeeded having recorded a result: delete the row, keep the result.
    Recorded(Recorded),
    /// Succeeded and completed in its own transaction (`Context::complete_in`), which has
    /// committed: nothing to write.
    Committed(JobId),
    /// Failed with attempts left: reschedule.
    Retry(Retry),
    /// Failed permanently: delete, or keep with `failed_at`.
    Fail(Fail),
    /// Not performed (stopping), or done overrunning: unlock, no attempt counted.
    Release(JobId),
}

impl Outcome {
    pub(super) fn id(&self) -> JobId {
        match self {
            Outcome::Complete(id) | Outcome::Committed(id) | Outcome::Release(id) => *id,
            Outcome::Recorded(r) => r.id,
            Outcome::Retry(r) => r.id,
            Outcome::Fail(f) => f.id,
        }
    }
}
