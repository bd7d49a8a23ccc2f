//! The vocabulary every layer shares, and nothing that acts: job ids, the rows of
//! `delayed_jobs` and their states, filters, a new row and what inserting it did, the
//! builder a job's `.delay()` returns, workers' and queues' figures, and stored schedules
//! (River's `rivertype`). It imports only from the rules below it.

mod attempt;
mod delayed;
mod filter;
mod job_row;
mod new_job;
mod progress;
mod rate;
mod result;
mod schedule;
mod stats;
mod workflow;

pub(crate) use attempt::kept_error;
pub use attempt::{Attempt, MAX_ATTEMPTS_KEPT, MAX_ATTEMPT_ERROR_BYTES};
pub use delayed::Delayed;
pub(crate) use delayed::RowOptions;
pub use filter::{JobFilter, Order};
pub use job_row::{JobRow, JobState};
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) use new_job::unix_secs;
pub(crate) use new_job::{stored_key, RunAt, Unique, SEQUENCE_LIMIT, UNBOUNDED_LIMIT};
pub use new_job::{EnqueueOutcome, JobId, NewJob, OnDuplicate};
pub(crate) use progress::{kept_fraction, kept_message};
pub use progress::{Progress, MAX_PROGRESS_MESSAGE_BYTES};
pub(crate) use rate::StoredRate;
pub use rate::{Rate, RateLimit, RateScope};
pub use result::JobResult;
pub(crate) use schedule::ScheduleDef;
pub use schedule::{Missed, ScheduleRow};
#[cfg(feature = "cli")]
pub(crate) use stats::throughput_within;
pub use stats::{Cancel, QueueStats, WorkerRow};
pub use workflow::StepRuns;
pub(crate) use workflow::{NewStep, NewWorkflow, BATCH_CALLBACKS};
pub use workflow::{
    StepInfo, StepState, WorkflowCancel, WorkflowId, WorkflowInfo, WorkflowRun, WorkflowState,
};
