//! The completer: writes job outcomes in batches. Whatever has arrived since the last write
//! goes in one statement per kind (delete, reschedule, fail, release), so a busy worker makes
//! few commits per job while an idle one writes at once. A write that fails is retried until
//! the database takes it: a job that succeeded is never rescheduled because its delete failed.

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use crate::enqueue::JobId;
use crate::store::{Fail, Retry};

/// Most outcomes written per round of statements.
const BATCH: usize = 1000;

/// How a finished job leaves the worker.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Succeeded: delete the row.
    Complete(JobId),
    /// Failed with attempts left: reschedule.
    Retry(Retry),
    /// Failed permanently: delete, or keep with `failed_at`.
    Fail(Fail),
    /// Not performed (stopping), or done overrunning: unlock, no attempt counted.
    Release(JobId),
    /// The worker is done: write what is queued, then stop.
    Shutdown,
}

pub(super) fn spawn(
    shared: Arc<Shared>,
    outcomes: Receiver<Outcome>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("dj-completer".into())
        .spawn(move || run(&shared, &outcomes))
        .expect("spawn the completer thread")
}

fn run(shared: &Shared, outcomes: &Receiver<Outcome>) {
    // Ends at `Shutdown` (after writing what is queued) or when every sender is gone.
    let mut shutting_down = false;
    while let Ok(first) = outcomes.recv() {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(outcome) = next.take() {
            match outcome {
                Outcome::Shutdown => shutting_down = true,
                outcome => batch.push(outcome),
            }
            if batch.len() < BATCH {
                next = outcomes.try_recv().ok();
            }
        }
        write_until_done(shared, batch);
        if shutting_down && outcomes.try_recv().is_err() {
            return;
        }
    }
}

#[derive(Default)]
struct Grouped {
    complete: Vec<JobId>,
    retry: Vec<Retry>,
    fail: Vec<Fail>,
    release: Vec<JobId>,
}

fn write_until_done(shared: &Shared, batch: Vec<Outcome>) {
    let ids: Vec<JobId> = batch.iter().filter_map(Outcome::id).collect();
    write_grouped(shared, batch);
    let mut held = shared.held.lock().unwrap_or_else(|e| e.into_inner());
    for id in ids {
        held.remove(&id);
    }
}

impl Outcome {
    fn id(&self) -> Option<JobId> {
        match self {
            Outcome::Complete(id) | Outcome::Release(id) => Some(*id),
            Outcome::Retry(r) => (r.release).then_some(r.id),
            Outcome::Fail(f) => Some(f.id),
            Outcome::Shutdown => None,
        }
    }
}

fn write_grouped(shared: &Shared, batch: Vec<Outcome>) {
    let mut grouped = Grouped::default();
    for outcome in batch {
        match outcome {
            Outcome::Complete(id) => grouped.complete.push(id),
            Outcome::Retry(r) => grouped.retry.push(r),
            Outcome::Fail(f) => grouped.fail.push(f),
            Outcome::Release(id) => grouped.release.push(id),
            Outcome::Shutdown => {}
        }
    }
    let mut wait = Duration::from_millis(50);
    let mut gave_up_at: Option<Instant> = None;
    loop {
        match write(shared, &mut grouped) {
            Ok(()) => return,
            Err(e) => {
                let stopping = shared.stop.is_set();
                let limit = *gave_up_at
                    .get_or_insert_with(|| Instant::now() + shared.config.shutdown_timeout);
                if stopping && Instant::now() >= limit {
                    shared.say_error(format_args!(
                        "Error while recording job outcomes, giving up at shutdown: {e}; \
                         jobs {:?} stay locked until their locks expire",
                        grouped.complete
                    ));
                    return;
                }
                shared.say_error(format_args!(
                    "Error while recording job outcomes: {e}; retrying in {:.1}s",
                    wait.as_secs_f64()
                ));
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Writes each group, emptying it once written, so a retry after an error repeats only
/// what is left.
fn write(shared: &Shared, g: &mut Grouped) -> crate::Result<()> {
    let store = shared.db.store();
    if !g.complete.is_empty() {
        store.job_complete(&shared.name, &g.complete)?;
        g.complete.clear();
    }
    if !g.retry.is_empty() {
        store.job_retry(&shared.name, &g.retry)?;
        g.retry.clear();
    }
    if !g.fail.is_empty() {
        store.job_fail(&shared.name, &g.fail)?;
        g.fail.clear();
    }
    if !g.release.is_empty() {
        store.job_unlock(&shared.name, &g.release)?;
        g.release.clear();
    }
    Ok(())
}
