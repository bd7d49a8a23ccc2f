//! The executor: one thread runs one job at a time. It takes the next claimed job from the
//! slot table, loads the handler (only registered types), runs the hooks and `perform` with
//! panics caught, and turns the result into an [`Outcome`] for the completer.
//! `failed_attempt` decides what a failure means: the watchdog and the rescuer use it too, for
//! jobs that overran or whose worker died.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::Either;

use super::completer::{Message, Outcome};
use super::slots::{Ended, Run};
use super::{job_label, Event, JobOutcome, Shared};
use crate::context::{Context, JobInfo};
use crate::job::{FailAction, JobError, Message as ErrorMessage};
use crate::registry::{load_handler, LoadedJob};
use crate::store::{Fail, JobRow, Retry};

/// Starts one executor thread.
pub(super) fn spawn(
    shared: Arc<Shared>,
    outcomes: Sender<Message>,
    number: usize,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("dj-executor-{number}"))
        .spawn(move || executor_loop(&shared, &outcomes))
        .expect("spawn an executor thread")
}

fn executor_loop(shared: &Arc<Shared>, outcomes: &Sender<Message>) {
    let _runtime = shared.enter_runtime();
    while let Some((row, owner)) = shared.slots.next() {
        if shared.stop.is_set() {
            // Claimed but not started: hand it back untouched.
            release(shared, outcomes, row.id);
            continue;
        }
        if execute(shared, row, &owner, outcomes) == Done::Overran {
            // The watchdog gave this job's place a new thread; this one ends.
            return;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Done {
    Returned,
    Overran,
}

fn send(outcomes: &Sender<Message>, owner: Arc<str>, outcome: Outcome) {
    let _ = outcomes.send(Message::Write(owner, outcome));
}

/// A job this executor will not run: unlocked untouched (unless it was lost meanwhile).
fn release(shared: &Shared, outcomes: &Sender<Message>, id: i64) {
    if let Ended::Record(owner) | Ended::Overran(owner) = shared.slots.ended(id) {
        send(outcomes, owner, Outcome::Release(id));
    }
}

/// A job being attempted: what finishing it needs.
struct Attempt {
    row: JobRow,
    job: Arc<dyn LoadedJob>,
    ctx: Context,
    label: String,
    started: Instant,
}

/// Starts one job: a sync job runs on this thread; an async one is spawned on the worker's
/// runtime, and this thread is free for the next job at once.
fn execute(
    shared: &Arc<Shared>,
    row: JobRow,
    owner: &Arc<str>,
    outcomes: &Sender<Message>,
) -> Done {
    let job: Arc<dyn LoadedJob> = match load_handler(&row.handler) {
        Ok(job) => Arc::from(job),
        Err(error) => {
            let label = job_label(&row.name, row.id, row.queue.as_deref());
            let destroy = shared.config.destroy_failed_jobs;
            shared.say_error(format_args!(
                "{label} FAILED permanently with DeserializationError: {}; {}",
                error.0,
                disposition(shared, row.id, destroy)
            ));
            shared.failed.fetch_add(1, Ordering::SeqCst);
            if let Ended::Record(owner) = shared.slots.ended(row.id) {
                send(
                    outcomes,
                    owner,
                    Outcome::Fail(Fail {
                        id: row.id,
                        attempts: row.attempts,
                        last_error: error.0,
                        destroy,
                    }),
                );
            }
            return Done::Returned;
        }
    };
    let name = job.display_name();
    let label = job_label(&name, row.id, row.queue.as_deref());
    if !may_start(shared, &row, owner, &label) {
        release(shared, outcomes, row.id);
        return Done::Returned;
    }
    let max_run_time = job.max_run_time().unwrap_or(shared.config.max_run_time);
    let runtime = shared.async_runtime.clone().filter(|_| job.is_async());
    let ctx = context(shared, &row);
    let started = Instant::now();
    let run = Run {
        cancel: ctx.cancel.clone(),
        deadline: started + max_run_time,
        max_run_time,
        name,
        job: job.clone(),
        recorded: row.crashes > 0,
        // An async job's deadline drops its future; the watchdog fences sync ones only.
        fenced: runtime.is_none(),
    };
    if !shared.slots.running(row.id, run) {
        shared.say_error(format_args!(
            "{label} not started: this worker lost its lock on it"
        ));
        return Done::Returned;
    }

    // One span per attempt, around the hooks and perform: a job's own log lines carry these
    // fields, and an OpenTelemetry layer exports it.
    let span = tracing::info_span!(
        "dj.job",
        id = row.id,
        name = %row.name,
        queue = row.queue.as_deref().unwrap_or(""),
        attempt = row.attempts + 1,
        worker = %owner,
    );
    let _entered = span.enter();
    shared.say(format_args!("{label} RUNNING"));
    shared.emit(|| Event::JobStarted {
        id: row.id,
        name: row.name.clone(),
        queue: row.queue.clone(),
        attempts: row.attempts,
    });
    let attempt = Attempt {
        row,
        job,
        ctx,
        label,
        started,
    };
    let Some(runtime) = runtime else {
        let result = attempt.job.invoke(&attempt.ctx);
        return finish(shared, attempt, result, outcomes);
    };
    let (shared, outcomes) = (shared.clone(), outcomes.clone());
    let span = span.clone();
    runtime.spawn(tracing::Instrument::instrument(
        async move {
            let result = match attempt.job.invoke_async(&attempt.ctx) {
                // A cancel request drops the future, as the deadline does.
                Some(future) => {
                    let timed = std::pin::pin!(tokio::time::timeout(max_run_time, future));
                    let cancelled = std::pin::pin!(attempt.ctx.cancelled());
                    match futures_util::future::select(timed, cancelled).await {
                        Either::Left((result, _)) => {
                            result.unwrap_or_else(|_| Err(expired_error(max_run_time)))
                        }
                        Either::Right(((), _)) => Err(JobError::cancelled()),
                    }
                }
                None => attempt.job.invoke(&attempt.ctx),
            };
            finish(&shared, attempt, result, &outcomes);
        },
        span,
    ));
    Done::Returned
}

/// Turns an attempt's result into its outcome, unless the job overran (its attempt is
/// recorded already: release its lock) or was lost (record nothing).
fn finish(
    shared: &Shared,
    attempt: Attempt,
    result: Result<(), JobError>,
    outcomes: &Sender<Message>,
) -> Done {
    let Attempt {
        row,
        job,
        ctx,
        label,
        started,
    } = attempt;
    let runtime = started.elapsed();
    shared.pace.observe(runtime);
    // A cancelled job that returned an error failed because of the cancel; one that finished
    // its work anyway succeeded.
    let result = match result {
        Err(e) if ctx.is_cancelled() && !e.is_cancelled() => Err(JobError::cancelled()),
        other => other,
    };
    let told = |outcome| {
        shared.emit(|| Event::JobFinished {
            id: row.id,
            name: row.name.clone(),
            outcome,
            runtime,
        })
    };
    let counter = match &result {
        Ok(()) => &shared.succeeded,
        Err(e) if e.is_snooze() && may_snooze(shared, &row) => &shared.snoozed,
        Err(_) => &shared.failed,
    };
    let counted = || {
        counter.fetch_add(1, Ordering::SeqCst);
    };
    let owner = match shared.slots.ended_and(row.id, counted) {
        Ended::Record(owner) => owner,
        Ended::Overran(owner) => {
            // The attempt was already recorded as expired; the lock was kept so that no one
            // ran it meanwhile. Now that it has really stopped, release it.
            shared.say(format_args!(
                "{label} returned after {:.4} (past its max_run_time); releasing its lock",
                runtime.as_secs_f64()
            ));
            send(outcomes, owner, Outcome::Release(row.id));
            told(JobOutcome::Expired);
            return Done::Overran;
        }
        Ended::Lost => {
            shared.say_error(format_args!(
                "{label} returned after {:.4}, but this worker lost its lock on it meanwhile \
                 (another worker has the job): its outcome is not recorded",
                runtime.as_secs_f64()
            ));
            told(JobOutcome::Lost);
            return Done::Returned;
        }
    };
    let outcome = match result {
        Ok(()) => {
            shared.say(format_args!(
                "{label} COMPLETED after {:.4}",
                runtime.as_secs_f64()
            ));
            Outcome::Complete(row.id)
        }
        Err(error) => failed_attempt(shared, Some(&*job), &ctx, &row, &label, error, true),
    };
    told(match &outcome {
        Outcome::Complete(_) => JobOutcome::Succeeded,
        Outcome::Retry(r) if r.snoozed => JobOutcome::Snoozed,
        Outcome::Retry(_) => JobOutcome::Retried,
        Outcome::Fail(_) if ctx.is_cancelled() => JobOutcome::Cancelled,
        Outcome::Fail(_) => JobOutcome::Failed,
        Outcome::Release(_) => JobOutcome::Lost,
    });
    send(outcomes, owner, outcome);
    Done::Returned
}

/// Whether a claimed job may start now. Not while this worker's heartbeat is stale (it may be
/// declared dead any moment, its claims freed): it waits for a fresh heartbeat, or for the
/// news that the job was lost. A job whose earlier worker died before recording its start
/// (`crashes > 0`) has its start recorded first, so that a job that kills its worker is
/// charged an attempt for it next time.
fn may_start(shared: &Shared, row: &JobRow, owner: &str, label: &str) -> bool {
    let timeout = shared.config.heartbeat_timeout;
    while !shared.beat.fresh(timeout) {
        if shared.stop.is_set() || shared.slots.is_lost(row.id) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if row.crashes == 0 {
        return true;
    }
    match shared.db.store().job_mark_started(owner, &[row.id]) {
        Ok(1) => true,
        Ok(_) => {
            shared.say_error(format_args!(
                "{label} not started: this worker no longer holds its lock"
            ));
            false
        }
        Err(e) => {
            shared.say_error(format_args!(
                "{label} not started: recording its start failed: {e}"
            ));
            false
        }
    }
}

/// The context a job of `row` runs with.
pub(super) fn context(shared: &Shared, row: &JobRow) -> Context {
    Context::new(
        JobInfo {
            id: row.id,
            name: row.name.clone(),
            queue: row.queue.clone(),
            priority: row.priority,
            attempts: row.attempts.max(0) as u32,
            snoozes: row.snoozes.max(0) as u32,
        },
        shared.state.clone(),
        Some(shared.db.clone()),
    )
}

/// What a failed attempt leads to: a retry after the backoff (or the job's own delay), or,
/// when attempts run out or the job asked for it, the `failure` hook and a permanent failure.
/// `release` false keeps the lock (the job is still running past its max_run_time).
pub(super) fn failed_attempt(
    shared: &Shared,
    job: Option<&dyn LoadedJob>,
    ctx: &Context,
    row: &JobRow,
    label: &str,
    error: JobError,
    release: bool,
) -> Outcome {
    let error = match error.action {
        FailAction::Snooze(delay) if may_snooze(shared, row) => {
            shared.say(format_args!(
                "{label} SNOOZED for {} ({} snoozes before)",
                humantime::format_duration(delay),
                row.snoozes
            ));
            return Outcome::Retry(Retry {
                id: row.id,
                attempts: row.attempts,
                delay,
                last_error: String::new(),
                release,
                snoozed: true,
            });
        }
        FailAction::Snooze(_) => JobError::new(ErrorMessage(format!(
            "snoozed {} times, the most max_snoozes allows",
            row.snoozes
        ))),
        _ => error,
    };
    let attempts = row.attempts.saturating_add(1);
    shared.say_error(format_args!(
        "{label} FAILED ({} prior attempts) with {}: {}",
        row.attempts,
        error.kind(),
        one_line(&error.report())
    ));
    let max_attempts = job
        .and_then(|j| j.max_attempts())
        .unwrap_or(shared.config.max_attempts)
        .max(1);
    let out_of_attempts = attempts >= i32::try_from(max_attempts).unwrap_or(i32::MAX);
    if error.is_permanent() || error.is_cancelled() || out_of_attempts {
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
            // Also from the watchdog's and the rescuer's threads.
            let _runtime = shared.enter_runtime();
            if let Err(panic) = job.failure(ctx, &error) {
                shared.say_error(format_args!("Error when running failure callback: {panic}"));
            }
        }
        return Outcome::Fail(Fail {
            id: row.id,
            attempts,
            last_error: error.report(),
            destroy,
        });
    }
    let delay = match error.action {
        FailAction::RetryIn(delay) => delay,
        _ => {
            let now = SystemTime::now();
            let at = job.map_or_else(
                || now + crate::backoff::delay(attempts as u32),
                |j| j.reschedule_at(now, attempts as u32),
            );
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Outcome::Retry(Retry {
        id: row.id,
        attempts,
        delay,
        last_error: error.report(),
        release,
        snoozed: false,
    })
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

/// Whether a snooze of this row is within `max_snoozes` (else it counts as a failed attempt).
fn may_snooze(shared: &Shared, row: &JobRow) -> bool {
    i64::from(row.snoozes) < i64::from(shared.config.max_snoozes)
}

/// What `last_error` stores (the message and its cause chain), on one log line: a driver's
/// error says only "db error" without the server's message below it.
fn one_line(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The error recorded for a run that went past its max_run_time.
pub(super) fn expired_error(max_run_time: Duration) -> JobError {
    JobError::new(ErrorMessage(format!(
        "execution expired (max_run_time is only {} second{})",
        max_run_time.as_secs(),
        if max_run_time.as_secs() == 1 { "" } else { "s" }
    )))
}
