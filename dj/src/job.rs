//! What a job is: the [`Job`] identity that `#[derive(Job)]` writes, and the [`Perform`] trait
//! (work plus optional hooks) that the application writes.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backoff;
use crate::context::Context;
use crate::model::{Delayed, OnDuplicate};

/// A job type's identity and defaults. Written by `#[derive(Job)]` or `#[dj::job]`; do not
/// implement it by hand (a hand-written impl is not registered, so no worker could load it).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a dj job",
    label = "not a job",
    note = "add `#[derive(dj::Job, serde::Serialize, serde::Deserialize)]` to `{Self}` and implement `dj::Perform` for it"
)]
pub trait Job: Perform + Stored + Send + Sync + 'static {
    /// The stable name stored in the `handler` column (defaults to the type's name).
    const NAME: &'static str;
    /// Older names that stored rows may still carry; a worker loads them as this type.
    const ALIASES: &'static [&'static str] = &[];
    /// Defaults from `#[job(...)]`.
    const OPTIONS: JobOptions = JobOptions::new();

    /// Starts an enqueue of this value: set priority, queue or run time, then `.enqueue(..)`.
    fn delay(self) -> Delayed<Self>
    where
        Self: Sized,
    {
        Delayed::new(self)
    }

    /// The unique key from `#[job(unique = ..)]`, built from this value's fields.
    #[doc(hidden)]
    fn __unique_key(&self) -> Option<String> {
        None
    }
    /// The concurrency key from `#[job(concurrency_key = ..)]` (or the sequence key from
    /// `#[job(sequence = ..)]`), built from this value's fields.
    #[doc(hidden)]
    fn __concurrency_key(&self) -> Option<String> {
        None
    }
}

/// What can be stored in a row: `Serialize + Deserialize`, for every such type. (Its own
/// trait so that the errors for a job without serde's derives name serde's traits and no
/// type of dj's.)
pub trait Stored: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> Stored for T {}

/// Per-type defaults declared with `#[job(queue = .., priority = .., max_attempts = ..,
/// max_run_time = ..)]`. `None` means "use the worker's setting".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobOptions {
    pub(crate) queue: Option<&'static str>,
    pub(crate) priority: Option<i32>,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) max_run_time: Option<Duration>,
    pub(crate) on_duplicate: OnDuplicate,
    pub(crate) unique_until_done: bool,
    pub(crate) concurrency: Option<u32>,
    pub(crate) sequence: bool,
    pub(crate) transactional: bool,
    pub(crate) encrypted: bool,
    /// `#[job(rate = ..)]`: starts, and the period in milliseconds.
    pub(crate) rate: Option<(u32, u64)>,
}

impl JobOptions {
    /// No defaults: every setting comes from the enqueue call or the worker.
    pub const fn new() -> Self {
        JobOptions {
            queue: None,
            priority: None,
            max_attempts: None,
            max_run_time: None,
            on_duplicate: OnDuplicate::Skip,
            unique_until_done: false,
            concurrency: None,
            sequence: false,
            transactional: false,
            encrypted: false,
            rate: None,
        }
    }
    /// The queue a job of this type goes to unless `.queue(..)` says otherwise.
    pub const fn queue(mut self, queue: &'static str) -> Self {
        self.queue = Some(queue);
        self
    }
    /// The priority (lower runs first) unless `.priority(..)` says otherwise.
    pub const fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }
    /// How many runs in all before the job fails permanently.
    pub const fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }
    /// How long one run may take before it counts as a failed attempt.
    pub const fn max_run_time(mut self, max_run_time: Duration) -> Self {
        self.max_run_time = Some(max_run_time);
        self
    }
    /// What a duplicate of a unique job does (see [`crate::Delayed::on_duplicate`]).
    pub const fn on_duplicate(mut self, policy: OnDuplicate) -> Self {
        self.on_duplicate = policy;
        self
    }
    /// Unique keys are held until the job is done (see [`crate::Delayed::unique_until_done`]).
    pub const fn unique_until_done(mut self) -> Self {
        self.unique_until_done = true;
        self
    }
    /// How many jobs with one concurrency key may run at once (default 1).
    pub const fn concurrency(mut self, limit: u32) -> Self {
        self.concurrency = Some(limit);
        self
    }
    /// The type's key (`#[job(sequence = ..)]`) is a sequence: its jobs run one at a time, in
    /// enqueue order (see [`crate::Delayed::sequence`]).
    pub const fn sequence(mut self) -> Self {
        self.sequence = true;
        self
    }
    /// At most `starts` jobs of one key (the type's concurrency key, else the type) start per
    /// `period_ms` milliseconds (see [`crate::Delayed::rate_limit`]); checked by the macro.
    pub const fn rate(mut self, starts: u32, period_ms: u64) -> Self {
        self.rate = Some((starts, period_ms));
        self
    }
    /// The type completes its row in its own database transaction
    /// ([`crate::Context::complete_in`]): workers claim its jobs the ordinary way (never in a
    /// fast lane, whose open transaction holds the row), so that the job's transaction can
    /// delete it.
    pub const fn transactional(mut self) -> Self {
        self.transactional = true;
        self
    }
    /// The type's fields are stored encrypted (`#[job(encrypted = true)]`; see `crate::crypt`).
    pub const fn encrypted(mut self) -> Self {
        self.encrypted = true;
        self
    }
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The work a job does, and optional hooks around it, as in delayed_job.
///
/// Order on success: `before → perform → success → after`; on error:
/// `before → perform → error → after`, then, once attempts run out, `failure`.
/// A panic anywhere in `before`, `perform` or `success` counts as an error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` derives `Job` but does not implement `dj::Perform`",
    label = "this job has no `perform`",
    note = "add `impl dj::Perform for {Self} {{ type Error = ..; fn perform(&self, ctx: &dj::Context) -> Result<(), Self::Error> {{ .. }} }}`, or `impl dj::PerformAsync` with an `async fn perform`"
)]
pub trait Perform {
    /// What `perform` returns on failure: any `std::error::Error + Send + Sync`, or a
    /// [`JobError`] to ask for a permanent failure or a retry at a given time.
    type Error: Into<JobError>;

    /// Does the work. `Err` (or a panic) is a failed attempt.
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error>;

    /// Runs before `perform`; a panic here fails the attempt.
    fn before(&self, _ctx: &Context) {}
    /// Runs after every attempt, successful or not (like `ensure`).
    fn after(&self, _ctx: &Context) {}
    /// Runs after a successful `perform`.
    fn success(&self, _ctx: &Context) {}
    /// Runs after a failed attempt, with the error.
    fn error(&self, _ctx: &Context, _error: &JobError) {}
    /// Runs once, when the job has failed for the last time.
    fn failure(&self, _ctx: &Context, _error: &JobError) {}
    /// When to run again after failed attempt number `attempts` (1 after the first failure).
    /// The default is delayed_job's `now + attempts⁴ + 5 s`.
    fn reschedule_at(&self, now: SystemTime, attempts: u32) -> SystemTime {
        now + backoff::delay(attempts)
    }
    /// Overrides the type's and the worker's `max_attempts`.
    fn max_attempts(&self) -> Option<u32> {
        None
    }
    /// Overrides the type's and the worker's `max_run_time`.
    fn max_run_time(&self) -> Option<Duration> {
        None
    }
    /// Overrides the worker's `destroy_failed_jobs` for this job.
    fn destroy_failed_jobs(&self) -> Option<bool> {
        None
    }
    /// The name used in log lines (defaults to the job's stored name).
    fn display_name(&self) -> Option<String> {
        None
    }

    /// True for [`PerformAsync`] jobs, which the worker runs on its tokio runtime.
    #[doc(hidden)]
    const __ASYNC: bool = false;

    /// The attempt as a future, for [`PerformAsync`] jobs; `None` for sync ones.
    #[doc(hidden)]
    fn __perform_async<'a>(&'a self, _ctx: &'a Context) -> Option<BoxFuture<'a>> {
        None
    }
}

/// A boxed attempt of an async job.
#[doc(hidden)]
pub type BoxFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;

/// The async counterpart of [`Perform`], for jobs whose work is an `async fn`: the worker runs
/// them on a tokio runtime of its own, many per thread, beside sync jobs. The hooks are the
/// same (and sync). `max_run_time` really stops an async job: its future is dropped at the
/// deadline and the attempt fails with "execution expired".
///
/// Every `PerformAsync` type is a [`Perform`] too (a blanket impl), so `#[derive(Job)]`
/// registers it like any job. Outside a worker (`dj::testing::inline`), its sync `perform`
/// runs the future to completion on a runtime of its own.
///
/// ```
/// use dj::{Context, Job, PerformAsync};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Job, Serialize, Deserialize)]
/// struct Ping { url: String }
///
/// impl PerformAsync for Ping {
///     type Error = std::io::Error;
///     async fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
///         tokio::time::sleep(std::time::Duration::from_millis(1)).await;
///         Ok(())
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `dj::PerformAsync`",
    note = "add `impl dj::PerformAsync for {Self} {{ type Error = ..; async fn perform(&self, ctx: &dj::Context) -> Result<(), Self::Error> {{ .. }} }}`"
)]
pub trait PerformAsync: Send + Sync {
    /// What `perform` returns on failure, as for [`Perform::Error`].
    type Error: Into<JobError>;

    /// Does the work. `Err` (or a panic) is a failed attempt. The future must be `Send`: the
    /// worker's runtime may move it between threads.
    fn perform(&self, ctx: &Context) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// See [`Perform::before`].
    fn before(&self, _ctx: &Context) {}
    /// See [`Perform::after`].
    fn after(&self, _ctx: &Context) {}
    /// See [`Perform::success`].
    fn success(&self, _ctx: &Context) {}
    /// See [`Perform::error`].
    fn error(&self, _ctx: &Context, _error: &JobError) {}
    /// See [`Perform::failure`].
    fn failure(&self, _ctx: &Context, _error: &JobError) {}
    /// See [`Perform::reschedule_at`].
    fn reschedule_at(&self, now: SystemTime, attempts: u32) -> SystemTime {
        now + backoff::delay(attempts)
    }
    /// See [`Perform::max_attempts`].
    fn max_attempts(&self) -> Option<u32> {
        None
    }
    /// See [`Perform::max_run_time`].
    fn max_run_time(&self) -> Option<Duration> {
        None
    }
    /// See [`Perform::destroy_failed_jobs`].
    fn destroy_failed_jobs(&self) -> Option<bool> {
        None
    }
    /// See [`Perform::display_name`].
    fn display_name(&self) -> Option<String> {
        None
    }
}

impl<T: PerformAsync> Perform for T {
    type Error = JobError;

    fn perform(&self, ctx: &Context) -> Result<(), JobError> {
        crate::block::on_own_thread(async {
            PerformAsync::perform(self, ctx).await.map_err(Into::into)
        })
    }
    fn before(&self, ctx: &Context) {
        PerformAsync::before(self, ctx)
    }
    fn after(&self, ctx: &Context) {
        PerformAsync::after(self, ctx)
    }
    fn success(&self, ctx: &Context) {
        PerformAsync::success(self, ctx)
    }
    fn error(&self, ctx: &Context, error: &JobError) {
        PerformAsync::error(self, ctx, error)
    }
    fn failure(&self, ctx: &Context, error: &JobError) {
        PerformAsync::failure(self, ctx, error)
    }
    fn reschedule_at(&self, now: SystemTime, attempts: u32) -> SystemTime {
        PerformAsync::reschedule_at(self, now, attempts)
    }
    fn max_attempts(&self) -> Option<u32> {
        PerformAsync::max_attempts(self)
    }
    fn max_run_time(&self) -> Option<Duration> {
        PerformAsync::max_run_time(self)
    }
    fn destroy_failed_jobs(&self) -> Option<bool> {
        PerformAsync::destroy_failed_jobs(self)
    }
    fn display_name(&self) -> Option<String> {
        PerformAsync::display_name(self)
    }

    const __ASYNC: bool = true;

    fn __perform_async<'a>(&'a self, ctx: &'a Context) -> Option<BoxFuture<'a>> {
        Some(Box::pin(async move {
            PerformAsync::perform(self, ctx).await.map_err(Into::into)
        }))
    }
}

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A failed attempt: the error, and what the job asks the worker to do about it.
///
/// Any `std::error::Error + Send + Sync + 'static` converts into it with `?`. Use
/// [`JobError::permanent`] to skip the remaining attempts, or [`JobError::retry_in`] to choose
/// the next run time.
pub struct JobError {
    error: BoxError,
    pub(crate) action: FailAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailAction {
    Retry,
    RetryIn(Duration),
    Permanent,
    /// Not a failure: run again after the delay, attempts unchanged.
    Snooze(Duration),
    /// Stopped on request (`worker cancel`): fails for good, no retries.
    Cancelled,
}

impl JobError {
    /// A failed attempt that follows the retry policy.
    pub fn new(error: impl Into<BoxError>) -> Self {
        JobError {
            error: error.into(),
            action: FailAction::Retry,
        }
    }
    /// Fails the job for good now: no more attempts, then `failure` runs.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        JobError {
            error: error.into(),
            action: FailAction::Permanent,
        }
    }
    /// A failed attempt that asks to run again after `delay` (if attempts remain).
    pub fn retry_in(error: impl Into<BoxError>, delay: Duration) -> Self {
        JobError {
            error: error.into(),
            action: FailAction::RetryIn(delay),
        }
    }
    /// Not a failure: asks to run again after `delay` without counting an attempt (the
    /// `error` hook does not run, `attempts` and `last_error` stay as they are). For a job
    /// that finds it cannot proceed yet: a rate limit, a resource still being prepared.
    /// Snoozes are bounded by the worker's `max_snoozes` (100): one more counts as a failed
    /// attempt.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # struct Quota { left: u32 }
    /// fn perform(quota: &Quota) -> Result<(), dj::JobError> {
    ///     if quota.left == 0 {
    ///         return Err(dj::JobError::snooze(Duration::from_secs(60)));
    ///     }
    ///     Ok(())
    /// }
    /// # assert!(perform(&Quota { left: 0 }).unwrap_err().is_snooze());
    /// ```
    pub fn snooze(delay: Duration) -> Self {
        JobError {
            error: Box::new(Message(format!(
                "snoozed for {}",
                humantime::format_duration(delay)
            ))),
            action: FailAction::Snooze(delay),
        }
    }
    /// The attempt was stopped because the job was cancelled (`worker cancel`).
    pub(crate) fn cancelled() -> Self {
        JobError {
            error: Box::new(Message("cancelled".to_owned())),
            action: FailAction::Cancelled,
        }
    }
    /// True if the job asked to snooze (run later, no attempt counted).
    pub fn is_snooze(&self) -> bool {
        matches!(self.action, FailAction::Snooze(_))
    }
    /// True if the attempt ended because the job was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.action == FailAction::Cancelled
    }
    /// The underlying error.
    pub fn error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.error
    }
    /// True if the job asked not to be retried.
    pub fn is_permanent(&self) -> bool {
        self.action == FailAction::Permanent
    }
    /// The message followed by each cause, one `caused by:` line each: what `last_error` holds.
    /// Cut at [`crate::MAX_LAST_ERROR_BYTES`], so that one enormous message cannot bloat the row.
    pub fn report(&self) -> String {
        let mut out = self.error.to_string();
        let mut source = self.error.source();
        while let Some(cause) = source {
            out.push_str("\ncaused by: ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        truncate(out, crate::MAX_LAST_ERROR_BYTES)
    }
    /// A short type-like label for log lines (`FAILED ... with LABEL: message`).
    pub(crate) fn kind(&self) -> &'static str {
        match self.action {
            FailAction::Permanent => "PermanentError",
            FailAction::Cancelled => "Cancelled",
            FailAction::Snooze(_) => "Snooze",
            _ => "Error",
        }
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for JobError {
    fn from(error: E) -> Self {
        JobError::new(error)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobError")
            .field("error", &self.report())
            .field("action", &self.action)
            .finish()
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

/// `text` cut to at most `max` bytes (on a character boundary), saying how long it was.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let total = text.len();
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("... (truncated: {total} bytes in all)"));
    text
}

/// A failure made from a message, for jobs that have no error type of their own.
#[derive(Debug)]
pub struct Message(pub String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Message {}

#[cfg(test)]
mod tests {
    use super::{JobError, Message};

    #[test]
    fn report_keeps_the_cause_chain_and_is_bounded() {
        #[derive(Debug)]
        struct Outer(Message);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("could not save the report")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let report = JobError::new(Outer(Message("disk full".into()))).report();
        assert_eq!(report, "could not save the report\ncaused by: disk full");
        let huge = JobError::new(Message("é".repeat(crate::MAX_LAST_ERROR_BYTES)));
        let report = huge.report();
        assert!(report.len() < crate::MAX_LAST_ERROR_BYTES + 64);
        assert!(report.ends_with(&format!(
            "(truncated: {} bytes in all)",
            2 * crate::MAX_LAST_ERROR_BYTES
        )));
    }
}
