//! The retry policy: what a failed attempt leads to. A snooze within `max_snoozes` comes back
//! after its delay without counting an attempt; any other failure counts one, and is retried
//! after the backoff (or the job's own delay) until attempts run out, the job asks not to be
//! retried, or it was cancelled. Then the `failure` hook runs and the row is failed for good:
//! kept (a cancelled job always is), or deleted with `destroy_failed_jobs`.
//!
//! The executor asks it about jobs that returned an error, the watchdog about jobs that overran
//! their max_run_time, the rescuer about jobs whose worker died, and the completer about jobs
//! whose own transaction completed their row but did not commit.

use std::time::{Duration, SystemTime};

use super::outcome::Outcome;
use super::{job_label, Shared};
use crate::context::{Context, JobInfo};
use crate::job::{FailAction, JobError, Message as ErrorMessage};
use crate::model::JobRow;
use crate::registry::{load_handler, LoadedJob};
use crate::store::{Fail, Retry};

/// A failed attempt of one job, as the policy needs it.
pub(super) struct Failure<'a> {
    /// The job's handler; `None` when it could not be loaded (only the defaults apply).
    pub job: Option<&'a dyn LoadedJob>,
    /// The context the attempt ran with; `None` for a job that is not running here (it
    /// overran, or its worker died): the `failure` hook then gets a fresh one.
    pub ctx: Option<&'a Context>,
    pub row: &'a JobRow,
    /// The job's name in log lines (see `job_label`).
    pub label: &'a str,
    pub error: JobError,
    /// False keeps the lock (the job is still running past its max_run_time).
    pub release: bool,
    /// How long the attempt ran, where the worker measured it (for the attempt history).
    pub ran_for: Option<Duration>,
}

/// What a failed attempt leads to: a snooze, a retry after the backoff (or the job's own
/// delay), or, when attempts run out or the job asked for it, the `failure` hook and a
/// permanent failure.
pub(super) fn failed_attempt(shared: &Shared, failure: Failure<'_>) -> Outcome {
    let error = match failure.error.action {
        FailAction::Snooze(delay) if may_snooze(shared, failure.row) => {
            return Outcome::Retry(snooze(shared, &failure, delay));
        }
        FailAction::Snooze(_) => JobError::new(ErrorMessage(format!(
            "snoozed {} times, the most max_snoozes allows",
            failure.row.snoozes
        ))),
        _ => failure.error,
    };
    let Failure {
        job,
        ctx,
        row,
        label,
        release,
        ran_for,
        ..
    } = failure;
    let attempts = row.attempts.saturating_add(1);
    shared.say_error(format_args!(
        "{label} FAILED ({} prior attempts) with {}: {}",
        row.attempts,
        error.kind(),
        one_line(&error.report())
    ));
    if error.is_permanent() || error.is_cancelled() || out_of_attempts(shared, job, attempts) {
        let failed = FailedForGood {
            job,
            ctx,
            row,
            label,
            attempts,
            ran_for,
        };
        return Outcome::Fail(fail_for_good(shared, failed, error));
    }
    Outcome::Retry(Retry {
        id: row.id,
        attempts,
        delay: retry_delay(job, &error, attempts),
        last_error: error.report(),
        release,
        snoozed: false,
        ran_for,
    })
}

/// Whether a snooze of this row is within `max_snoozes` (else it counts as a failed attempt).
pub(super) fn may_snooze(shared: &Shared, row: &JobRow) -> bool {
    i64::from(row.snoozes) < i64::from(shared.config.max_snoozes)
}

/// A snooze within `max_snoozes`: back after `delay`, no attempt counted.
fn snooze(shared: &Shared, failure: &Failure<'_>, delay: Duration) -> Retry {
    let row = failure.row;
    shared.say(format_args!(
        "{} SNOOZED for {} ({} snoozes before)",
        failure.label,
        humantime::format_duration(delay),
        row.snoozes
    ));
    Retry {
        id: row.id,
        attempts: row.attempts,
        delay,
        last_error: String::new(),
        release: failure.release,
        snoozed: true,
        ran_for: failure.ran_for,
    }
}

/// Whether `attempts` reaches the job's `max_attempts` (or the worker's).
fn out_of_attempts(shared: &Shared, job: Option<&dyn LoadedJob>, attempts: i32) -> bool {
    let max_attempts = job
        .and_then(|j| j.max_attempts())
        .unwrap_or(shared.config.max_attempts)
        .max(1);
    attempts >= i32::try_from(max_attempts).unwrap_or(i32::MAX)
}

/// How long until the retry: the job's own delay (`RetryIn`), else its backoff.
fn retry_delay(job: Option<&dyn LoadedJob>, error: &JobError, attempts: i32) -> Duration {
    if let FailAction::RetryIn(delay) = error.action {
        return delay;
    }
    let now = SystemTime::now();
    let at = job.map_or_else(
        || now + crate::backoff::delay(attempts as u32),
        |j| j.reschedule_at(now, attempts as u32),
    );
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

/// A job that will not be retried, with the attempt just counted.
struct FailedForGood<'a> {
    job: Option<&'a dyn LoadedJob>,
    ctx: Option<&'a Context>,
    row: &'a JobRow,
    label: &'a str,
    attempts: i32,
    ran_for: Option<Duration>,
}

/// Logs why the job failed for good and what becomes of its row, runs its `failure` hook,
/// and says how to record it.
fn fail_for_good(shared: &Shared, failed: FailedForGood<'_>, error: JobError) -> Fail {
    let FailedForGood {
        job,
        ctx,
        row,
        label,
        attempts,
        ran_for,
    } = failed;
    // A cancelled job is kept, so that the cancel can be seen (and undone with `retry`).
    let destroy = !error.is_cancelled()
        && job
            .and_then(|j| j.destroy_failed_jobs())
            .unwrap_or(shared.config.destroy_failed_jobs);
    let why = if error.is_cancelled() {
        "it was cancelled".to_owned()
    } else if error.is_permanent() {
        "the job asked not to be retried".to_owned()
    } else {
        format!("of {attempts} consecutive failures")
    };
    shared.say_error(format_args!(
        "{label} FAILED permanently because {why}; {}",
        disposition(shared, row.id, destroy)
    ));
    if let Some(job) = job {
        run_failure_hook(shared, job, ctx, row, &error);
    }
    Fail {
        id: row.id,
        attempts,
        last_error: error.report(),
        destroy,
        ran_for,
    }
}

/// The job's `failure` hook, with the attempt's context or, for a job not running here, a
/// fresh one.
fn run_failure_hook(
    shared: &Shared,
    job: &dyn LoadedJob,
    ctx: Option<&Context>,
    row: &JobRow,
    error: &JobError,
) {
    // Also from the watchdog's and the rescuer's threads.
    let _runtime = shared.enter_runtime();
    let fresh;
    let ctx = match ctx {
        Some(ctx) => ctx,
        None => {
            fresh = context(shared, row);
            &fresh
        }
    };
    if let Err(panic) = job.failure(ctx, error) {
        shared.say_error(format_args!("Error when running failure callback: {panic}"));
    }
}

/// A job whose handler could not be loaded (its arguments do not decode, or its type is not
/// registered) fails for good at once; its attempts are not counted.
pub(super) fn undecodable(shared: &Shared, row: &JobRow, label: &str, error: String) -> Fail {
    let destroy = shared.config.destroy_failed_jobs;
    shared.say_error(format_args!(
        "{label} FAILED permanently with DeserializationError: {error}; {}",
        disposition(shared, row.id, destroy)
    ));
    Fail {
        id: row.id,
        attempts: row.attempts,
        last_error: error,
        destroy,
        ran_for: None,
    }
}

/// What becomes of a permanently failed row, for its log line: where to find it and for how
/// long, or that it is gone.
fn disposition(shared: &Shared, id: i64, destroy: bool) -> String {
    if destroy {
        return "deleted".to_owned();
    }
    format!(
        "kept as failed (retry with `worker retry {id}`; pruned after {})",
        humantime::format_duration(shared.config.keep_failed_for)
    )
}

/// What `last_error` stores (the message and its cause chain), on one log line: a driver's
/// error says only "db error" without the server's message below it.
fn one_line(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The context a job of `row` runs with (and its `failure` hook).
pub(super) fn context(shared: &Shared, row: &JobRow) -> Context {
    Context::new(
        JobInfo {
            id: row.id,
            name: row.name.clone(),
            queue: row.queue.clone(),
            priority: row.priority,
            attempts: row.attempts.max(0) as u32,
            snoozes: row.snoozes.max(0) as u32,
            claimed_at: row.locked_at,
        },
        shared.state.clone(),
        Some(shared.db.clone()),
    )
}

/// A failed attempt, for `reason`, of a started row that no attempt running here will
/// settle: a retry after the usual backoff, or a failure for good.
pub(super) fn charged(shared: &Shared, reason: &str, row: &JobRow) -> Outcome {
    let label = job_label(&row.name, row.id, row.queue.as_deref());
    let (job, error) = match load_handler(&row.handler) {
        Ok(job) => (Some(job), JobError::new(ErrorMessage(reason.to_owned()))),
        Err(error) => (None, JobError::permanent(ErrorMessage(error.0))),
    };
    failed_attempt(
        shared,
        Failure {
            job: job.as_deref(),
            ctx: None,
            row,
            label: &label,
            error,
            release: true,
            ran_for: None,
        },
    )
}
