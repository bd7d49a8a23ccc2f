//! What the app can learn of a job it enqueued: still to run, its recorded result, or its
//! error ([`crate::Db::job_result`]).

use serde::de::DeserializeOwned;

use super::JobId;
use crate::error::{Error, Result};

/// What became of a job, as [`crate::Db::job_result`] reads it and the waits return it.
///
/// Read in this order: a row still in `delayed_jobs` says `Pending` (waiting, scheduled,
/// running or retrying) or `Failed` (failed for good, kept with its `last_error`); with the row
/// gone, `dj_results` says `Succeeded` (the value the job recorded with
/// [`crate::Context::set_result`]) or `Failed` (failed for good under `destroy_failed_jobs`);
/// with neither, `Gone`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum JobResult {
    /// Not finished: waiting, scheduled, running, or failed with attempts left.
    Pending,
    /// Succeeded, having recorded this value.
    Succeeded(serde_json::Value),
    /// Failed for good, with this error.
    Failed {
        /// The last attempt's error (`last_error`).
        error: String,
    },
    /// Neither a row nor a result: the job succeeded without recording a result, its result
    /// is older than the `result_retention` of the workers, or the job was deleted.
    Gone,
}

impl JobResult {
    /// True unless `Pending`.
    pub fn is_finished(&self) -> bool {
        !matches!(self, JobResult::Pending)
    }

    /// The recorded value as a `T`: an error for a job that failed ([`Error::JobFailed`]), is
    /// still pending or gone without a result ([`Error::NoResult`]), or whose value is not a `T`.
    pub fn value<T: DeserializeOwned>(&self, id: JobId) -> Result<T> {
        match self {
            JobResult::Succeeded(value) => T::deserialize(value).map_err(|e| {
                Error::Invalid(format!(
                    "job {id}'s result is not a `{}`: {e}",
                    std::any::type_name::<T>()
                ))
            }),
            JobResult::Failed { error } => Err(Error::JobFailed {
                id,
                error: error.clone(),
            }),
            JobResult::Pending => Err(Error::NoResult {
                id,
                why: "it has not finished (within the wait, if it was awaited)",
            }),
            JobResult::Gone => Err(Error::NoResult {
                id,
                why: "its row is gone and no result is stored: it succeeded without \
                      `Context::set_result`, its result is older than `result_retention`, \
                      or it was deleted",
            }),
        }
    }
}
