//! The executor: one thread runs one job at a time. It takes the next claimed job from the
//! slot table, loads the handler (only registered types), runs the hooks and `perform` with
//! panics caught, and turns the result into an [`Outcome`] for the completer; what a failure
//! leads to is the retry policy's to decide (`retry`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::Either;
use tokio::runtime::Handle;

use super::completer::{Message, Outcome};
use super::retry::{self, Failure};
use super::slots::{Ended, Run};
use super::{job_label, Event, JobOutcome, Shared};
use crate::context::{Claim, Context};
use crate::job::{JobError, Message as ErrorMessage};
use crate::model::JobRow;
use crate::progress::Reporter;
use crate::registry::{load_handler, LoadedJob};
use crate::store::Recorded;

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

/// An outcome for the completer. A fast lane's job's is kept in its lane at once, so that
/// the lane, which may end at any moment, ends with it (see `Lanes::route`).
fn send(shared: &Shared, outcomes: &Sender<Message>, owner: Arc<str>, outcome: Outcome) {
    if let Some(outcome) = shared.lanes.route(outcome) {
        let _ = outcomes.send(Message::Write(owner, outcome));
    }
}

/// A job this executor will not run: unlocked untouched (unless it was lost meanwhile).
fn release(shared: &Shared, outcomes: &Sender<Message>, id: i64) {
    if let Ended::Record(owner) | Ended::Overran(owner) = shared.slots.ended(id) {
        send(shared, outcomes, owner, Outcome::Release(id));
    }
}

/// A job being attempted: what running and finishing it needs.
struct Attempt {
    row: JobRow,
    job: Arc<dyn LoadedJob>,
    ctx: Context,
    label: String,
    started: Instant,
    max_run_time: Duration,
    /// The runtime an async job runs on; `None` runs the job on this thread.
    async_runtime: Option<Handle>,
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
            fail_undecodable(shared, &row, error.0, outcomes);
            return Done::Returned;
        }
    };
    let Some(mut attempt) = begin(shared, row, job, owner, outcomes) else {
        return Done::Returned;
    };
    // One span per attempt, around the hooks and perform: a job's own log lines carry these
    // fields, and an OpenTelemetry layer exports it.
    let span = tracing::info_span!(
        "dj.job",
        id = attempt.row.id,
        name = %attempt.row.name,
        queue = attempt.row.queue.as_deref().unwrap_or(""),
        attempt = attempt.row.attempts + 1,
        worker = %owner,
        traceparent = tracing::field::Empty,
    );
    continue_trace(&span, &attempt.row.handler);
    let _entered = span.enter();
    announce(shared, &attempt);
    let Some(runtime) = attempt.async_runtime.take() else {
        let result = attempt.job.invoke(&attempt.ctx);
        return finish(shared, attempt, result, outcomes);
    };
    let (shared, outcomes) = (shared.clone(), outcomes.clone());
    runtime.spawn(tracing::Instrument::instrument(
        async move {
            let result = run_async(&attempt).await;
            finish(&shared, attempt, result, &outcomes);
        },
        span.clone(),
    ));
    Done::Returned
}

/// The enqueuer's trace context, if the job has one: recorded on the attempt's span, which
/// the app's propagator makes continue that trace (see `crate::trace`).
fn continue_trace(span: &tracing::Span, handler: &str) {
    let Some(traceparent) = crate::handler::traceparent_of(handler) else {
        return;
    };
    span.record("traceparent", traceparent);
    if let Some(propagator) = crate::trace::propagator() {
        propagator.continue_trace(span, traceparent);
    }
}

/// A job whose handler could not be loaded fails for good without running.
fn fail_undecodable(shared: &Shared, row: &JobRow, error: String, outcomes: &Sender<Message>) {
    let label = job_label(&row.name, row.id, row.queue.as_deref());
    let fail = retry::undecodable(shared, row, &label, error);
    shared.failed.fetch_add(1, Ordering::SeqCst);
    if let Ended::Record(owner) = shared.slots.ended(row.id) {
        send(shared, outcomes, owner, Outcome::Fail(fail));
    }
}

/// Marks a claimed job running (in the slot table, and in the database first when an earlier
/// worker died running it), or releases it when it may not start.
fn begin(
    shared: &Shared,
    row: JobRow,
    job: Arc<dyn LoadedJob>,
    owner: &Arc<str>,
    outcomes: &Sender<Message>,
) -> Option<Attempt> {
    let name = job.display_name();
    let label = job_label(&name, row.id, row.queue.as_deref());
    if !may_start(shared, &row, owner, &label) {
        release(shared, outcomes, row.id);
        return None;
    }
    let max_run_time = job.max_run_time().unwrap_or(shared.config.max_run_time);
    let runtime = shared.async_runtime.clone().filter(|_| job.is_async());
    let ctx = retry::context(shared, &row)
        .claimed(Claim {
            worker: owner.clone(),
            transactional: job.transactional(),
        })
        .reporting(Reporter {
            board: shared.progress.clone(),
            id: row.id,
        });
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
        return None;
    }
    Some(Attempt {
        row,
        job,
        ctx,
        label,
        started,
        max_run_time,
        async_runtime: runtime,
    })
}

/// The attempt's first log line and event.
fn announce(shared: &Shared, attempt: &Attempt) {
    let row = &attempt.row;
    shared.say(format_args!("{} RUNNING", attempt.label));
    shared.emit(|| Event::JobStarted {
        id: row.id,
        name: row.name.clone(),
        queue: row.queue.clone(),
        attempts: row.attempts,
    });
}

/// Runs an async job until it returns, its max_run_time runs out or it is cancelled: the
/// last two drop its future.
async fn run_async(attempt: &Attempt) -> Result<(), JobError> {
    let Some(future) = attempt.job.invoke_async(&attempt.ctx) else {
        return attempt.job.invoke(&attempt.ctx);
    };
    let max_run_time = attempt.max_run_time;
    let timed = std::pin::pin!(tokio::time::timeout(max_run_time, future));
    let cancelled = std::pin::pin!(attempt.ctx.cancelled());
    match futures_util::future::select(timed, cancelled).await {
        Either::Left((result, _)) => result.unwrap_or_else(|_| Err(expired_error(max_run_time))),
        Either::Right(((), _)) => Err(JobError::cancelled()),
    }
}

/// Turns an attempt's result into its outcome, unless the job overran (its attempt is
/// recorded already: release its lock) or was lost (record nothing).
fn finish(
    shared: &Shared,
    attempt: Attempt,
    result: Result<(), JobError>,
    outcomes: &Sender<Message>,
) -> Done {
    let runtime = attempt.started.elapsed();
    shared.pace.observe(runtime);
    shared.progress.ended(attempt.row.id);
    // A cancelled job that returned an error failed because of the cancel; one that finished
    // its work anyway succeeded.
    let result = match result {
        Err(e) if attempt.ctx.is_cancelled() && !e.is_cancelled() => Err(JobError::cancelled()),
        other => other,
    };
    let (committed, result) = settle(shared, &attempt, result);
    let counter = counter(shared, &attempt.row, &result);
    let counted = || {
        counter.fetch_add(1, Ordering::SeqCst);
    };
    let owner = match shared.slots.ended_and(attempt.row.id, counted) {
        Ended::Record(owner) => owner,
        Ended::Overran(owner) => {
            // The attempt was already recorded as expired; the lock was kept so that no one
            // ran it meanwhile. Now that it has really stopped, release it.
            shared.say(format_args!(
                "{} returned after {:.4} (past its max_run_time); releasing its lock",
                attempt.label,
                runtime.as_secs_f64()
            ));
            send(shared, outcomes, owner, Outcome::Release(attempt.row.id));
            told(shared, &attempt.row, JobOutcome::Expired, runtime);
            return Done::Overran;
        }
        Ended::Lost => {
            shared.say_error(format_args!(
                "{} returned after {:.4}, but this worker lost its lock on it meanwhile \
                 (another worker has the job): its outcome is not recorded",
                attempt.label,
                runtime.as_secs_f64()
            ));
            told(shared, &attempt.row, JobOutcome::Lost, runtime);
            return Done::Returned;
        }
    };
    let outcome = if committed {
        shared.say(format_args!(
            "{} COMPLETED after {:.4} (in its own transaction)",
            attempt.label,
            runtime.as_secs_f64()
        ));
        Outcome::Committed(attempt.row.id)
    } else {
        outcome(shared, &attempt, result, runtime)
    };
    let finished = job_outcome(&outcome, attempt.ctx.is_cancelled());
    told(shared, &attempt.row, finished, runtime);
    send(shared, outcomes, owner, outcome);
    Done::Returned
}

/// For a job that completed its row in its own transaction ([`Context::complete_in`]):
/// whether that transaction committed (the job is done, whatever `perform` returned after),
/// and the attempt's result knowing it. After an `Ok`, it is taken to have committed: the
/// completer finds the rows of those that did not (still held) in one look per batch, and
/// fails their attempts. After an error, the row is looked for now: gone means committed;
/// held (or a failed look, whose retry then changes nothing where the row is gone) means
/// the attempt failed with its error.
fn settle(
    shared: &Shared,
    attempt: &Attempt,
    result: Result<(), JobError>,
) -> (bool, Result<(), JobError>) {
    let Some(worker) = attempt.ctx.completed_in_transaction() else {
        return (false, result);
    };
    let Err(error) = &result else {
        return (true, result);
    };
    match shared.db.store().job_held(worker, &[attempt.row.id]) {
        Ok(held) if held.is_empty() => {
            shared.say(format_args!(
                "{} returned an error after its transaction had completed it: {}",
                attempt.label,
                error.report()
            ));
            (true, Ok(()))
        }
        _ => (false, result),
    }
}

/// The count a finished attempt adds to.
fn counter<'a>(shared: &'a Shared, row: &JobRow, result: &Result<(), JobError>) -> &'a AtomicU64 {
    match result {
        Ok(()) => &shared.succeeded,
        Err(e) if e.is_snooze() && retry::may_snooze(shared, row) => &shared.snoozed,
        Err(_) => &shared.failed,
    }
}

/// What a recorded attempt's result leads to: completion, or what the retry policy decides.
fn outcome(
    shared: &Shared,
    attempt: &Attempt,
    result: Result<(), JobError>,
    runtime: Duration,
) -> Outcome {
    match result {
        Ok(()) => {
            shared.say(format_args!(
                "{} COMPLETED after {:.4}",
                attempt.label,
                runtime.as_secs_f64()
            ));
            match attempt.ctx.take_result() {
                Some(value) => Outcome::Recorded(Recorded {
                    id: attempt.row.id,
                    value,
                }),
                None => Outcome::Complete(attempt.row.id),
            }
        }
        Err(error) => retry::failed_attempt(
            shared,
            Failure {
                job: Some(&*attempt.job),
                ctx: Some(&attempt.ctx),
                row: &attempt.row,
                label: &attempt.label,
                error,
                release: true,
                ran_for: Some(runtime),
            },
        ),
    }
}

/// How an outcome is told to the event listener.
fn job_outcome(outcome: &Outcome, cancelled: bool) -> JobOutcome {
    match outcome {
        Outcome::Complete(_) | Outcome::Recorded(_) | Outcome::Committed(_) => {
            JobOutcome::Succeeded
        }
        Outcome::Retry(r) if r.snoozed => JobOutcome::Snoozed,
        Outcome::Retry(_) => JobOutcome::Retried,
        Outcome::Fail(_) if cancelled => JobOutcome::Cancelled,
        Outcome::Fail(_) => JobOutcome::Failed,
        Outcome::Release(_) => JobOutcome::Lost,
    }
}

/// Tells the event listener that an attempt ended.
fn told(shared: &Shared, row: &JobRow, outcome: JobOutcome, runtime: Duration) {
    shared.emit(|| Event::JobFinished {
        id: row.id,
        name: row.name.clone(),
        outcome,
        runtime,
    });
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

/// The error recorded for a run that went past its max_run_time.
pub(super) fn expired_error(max_run_time: Duration) -> JobError {
    JobError::new(ErrorMessage(format!(
        "execution expired (max_run_time is only {} second{})",
        max_run_time.as_secs(),
        if max_run_time.as_secs() == 1 { "" } else { "s" }
    )))
}
