//! The executor: one slot runs one job at a time. It loads the handler (only registered
//! types), runs the hooks and `perform` with panics caught, and turns the result into an
//! [`Outcome`] for the completer. `failed_attempt` decides what a failure means: the rescuer
//! uses it too, for jobs whose worker died or that overran.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::completer::Outcome;
use super::{job_label, Running, Shared};
use crate::context::{Context, JobInfo};
use crate::job::{FailAction, JobError, Message};
use crate::registry::{load_handler, LoadedJob};
use crate::store::{Fail, JobRow, Retry};

/// Starts one executor thread taking jobs from `jobs`.
pub(super) fn spawn(
    shared: Arc<Shared>,
    jobs: Arc<Mutex<Receiver<JobRow>>>,
    outcomes: Sender<Outcome>,
    slot: usize,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("dj-executor-{slot}"))
        .spawn(move || slot_loop(&shared, &jobs, &outcomes))
        .expect("spawn an executor thread")
}

fn slot_loop(
    shared: &Arc<Shared>,
    jobs: &Arc<Mutex<Receiver<JobRow>>>,
    outcomes: &Sender<Outcome>,
) {
    loop {
        let next = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(row) = next else {
            return;
        };
        if shared.stop.is_set() {
            // Claimed but not started: hand it back untouched.
            let _ = outcomes.send(Outcome::Release(row.id));
            shared.finish_one();
            continue;
        }
        if execute(shared, row, outcomes) {
            // The job overran: the rescuer already freed its capacity and gave the slot a
            // new thread; this one ends.
            return;
        }
        shared.finish_one();
    }
}

/// Runs one job; returns true if it overran `max_run_time` (its slot was replaced).
fn execute(shared: &Arc<Shared>, row: JobRow, outcomes: &Sender<Outcome>) -> bool {
    let job: Arc<dyn LoadedJob> = match load_handler(&row.handler) {
        Ok(job) => Arc::from(job),
        Err(error) => {
            let label = job_label(&row.name, row.id, row.queue.as_deref());
            shared.say_error(format_args!(
                "{label} FAILED permanently with DeserializationError: {}",
                error.0
            ));
            shared.failed.fetch_add(1, Ordering::SeqCst);
            let _ = outcomes.send(Outcome::Fail(Fail {
                id: row.id,
                attempts: row.attempts,
                last_error: error.0,
                destroy: shared.config.destroy_failed_jobs,
            }));
            return false;
        }
    };
    let name = job.display_name();
    let label = job_label(&name, row.id, row.queue.as_deref());
    let ctx = context(shared, &row);
    let max_run_time = job.max_run_time().unwrap_or(shared.config.max_run_time);
    let expired = Arc::new(AtomicBool::new(false));
    shared
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            row.id,
            Running {
                id: row.id,
                name: name.clone(),
                deadline: Instant::now() + max_run_time,
                max_run_time,
                expired: expired.clone(),
                job: job.clone(),
                row: row.clone(),
            },
        );

    shared.say(format_args!("{label} RUNNING"));
    let started = Instant::now();
    let result = job.invoke(&ctx);
    let runtime = started.elapsed();
    shared
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&row.id);

    if expired.load(Ordering::SeqCst) {
        // The attempt was already recorded as expired; the lease was kept so that no one ran
        // it meanwhile. Now that it has really stopped, release it.
        shared.say(format_args!(
            "{label} returned after {:.4} (past its max_run_time); releasing its lock",
            runtime.as_secs_f64()
        ));
        // Send first, then unfence: a producer that sees no fenced job knows every release
        // is already queued for the completer.
        let _ = outcomes.send(Outcome::Release(row.id));
        shared
            .fenced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&row.id);
        return true;
    }
    let outcome = match result {
        Ok(()) => {
            shared.say(format_args!(
                "{label} COMPLETED after {:.4}",
                runtime.as_secs_f64()
            ));
            shared.succeeded.fetch_add(1, Ordering::SeqCst);
            Outcome::Complete(row.id)
        }
        Err(error) => {
            shared.failed.fetch_add(1, Ordering::SeqCst);
            failed_attempt(shared, Some(&*job), &ctx, &row, &label, error, true)
        }
    };
    let _ = outcomes.send(outcome);
    false
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
    let attempts = row.attempts.saturating_add(1);
    shared.say_error(format_args!(
        "{label} FAILED ({} prior attempts) with {}: {}",
        row.attempts,
        error.kind(),
        one_line(&error.to_string())
    ));
    let max_attempts = job
        .and_then(|j| j.max_attempts())
        .unwrap_or(shared.config.max_attempts)
        .max(1);
    let out_of_attempts = attempts >= i32::try_from(max_attempts).unwrap_or(i32::MAX);
    if error.is_permanent() || out_of_attempts {
        if error.is_permanent() {
            shared.say_error(format_args!(
                "{label} FAILED permanently because the job asked not to be retried"
            ));
        } else {
            shared.say_error(format_args!(
                "{label} FAILED permanently because of {attempts} consecutive failures"
            ));
        }
        if let Some(job) = job {
            if let Err(panic) = job.failure(ctx, &error) {
                shared.say_error(format_args!("Error when running failure callback: {panic}"));
            }
        }
        let destroy = job
            .and_then(|j| j.destroy_failed_jobs())
            .unwrap_or(shared.config.destroy_failed_jobs);
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
    })
}

fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_owned()
}

/// The error recorded for a run that went past its max_run_time.
pub(super) fn expired_error(max_run_time: Duration) -> JobError {
    JobError::new(Message(format!(
        "execution expired (max_run_time is only {} second{})",
        max_run_time.as_secs(),
        if max_run_time.as_secs() == 1 { "" } else { "s" }
    )))
}
