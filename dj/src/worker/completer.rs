//! The completer: writes job outcomes in batches. Whatever has arrived since the last write
//! goes in one statement per kind (delete, reschedule, fail, release), so a busy worker makes
//! few commits per job while an idle one writes at once. A write that fails is retried until
//! the database takes it: a job that succeeded is never rescheduled because its delete failed.
//! Every write names the worker the row was claimed under, and matches only rows still locked
//! by it: a worker declared dead meanwhile changes nothing (fencing).

use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use crate::model::JobId;
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
}

/// What reaches the completer.
#[derive(Debug)]
pub(super) enum Message {
    /// An outcome, for a row claimed under this worker name.
    Write(Arc<str>, Outcome),
    /// The worker is done: write what is queued, then stop.
    Shutdown,
}

pub(super) fn spawn(
    shared: Arc<Shared>,
    outcomes: Receiver<Message>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("dj-completer".into())
        .spawn(move || run(&shared, &outcomes))
        .expect("spawn the completer thread")
}

fn run(shared: &Shared, outcomes: &Receiver<Message>) {
    // Ends at `Shutdown` (after writing what is queued) or when every sender is gone.
    let mut shutting_down = false;
    // Set at the first failed write after the stop: the one bound for all writes left.
    let mut give_up_at: Option<Instant> = None;
    let mut pending: Option<Message> = None;
    while let Some(first) = pending.take().or_else(|| outcomes.recv().ok()) {
        let mut batch: BTreeMap<Arc<str>, Vec<Outcome>> = BTreeMap::new();
        let mut size = 0;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Shutdown => shutting_down = true,
                Message::Write(owner, outcome) => {
                    batch.entry(owner).or_default().push(outcome);
                    size += 1;
                }
            }
            if size < BATCH {
                next = outcomes.try_recv().ok();
            }
        }
        for (owner, outcomes) in batch {
            write_until_done(shared, &owner, outcomes, &mut give_up_at);
        }
        if shutting_down {
            // Stop once nothing more is queued; what is, goes round again.
            match outcomes.try_recv() {
                Ok(message) => pending = Some(message),
                Err(_) => return,
            }
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

fn write_until_done(
    shared: &Shared,
    owner: &str,
    batch: Vec<Outcome>,
    give_up_at: &mut Option<Instant>,
) {
    let ids: Vec<JobId> = batch.iter().map(Outcome::id).collect();
    write_grouped(shared, owner, batch, give_up_at);
    shared.slots.written(&ids);
}

impl Outcome {
    fn id(&self) -> JobId {
        match self {
            Outcome::Complete(id) | Outcome::Release(id) => *id,
            Outcome::Retry(r) => r.id,
            Outcome::Fail(f) => f.id,
        }
    }
}

/// Retries until written, or, once the worker is stopping, until `shutdown_timeout` after
/// the first failure since the stop: outcomes that cannot be written then leave their rows
/// locked for the rescuer (a completed job may run again; none is lost).
fn write_grouped(
    shared: &Shared,
    owner: &str,
    batch: Vec<Outcome>,
    give_up_at: &mut Option<Instant>,
) {
    let mut grouped = Grouped::default();
    for outcome in batch {
        match outcome {
            Outcome::Complete(id) => grouped.complete.push(id),
            Outcome::Retry(r) => grouped.retry.push(r),
            Outcome::Fail(f) => grouped.fail.push(f),
            Outcome::Release(id) => grouped.release.push(id),
        }
    }
    let mut wait = Duration::from_millis(50);
    loop {
        match write(shared, owner, &mut grouped) {
            Ok(()) => return,
            Err(e) => {
                let stopping = shared.stop.is_set();
                let limit = if stopping {
                    *give_up_at
                        .get_or_insert_with(|| Instant::now() + shared.config.shutdown_timeout)
                } else {
                    Instant::now() + wait
                };
                if stopping && Instant::now() >= limit {
                    shared.say_error(format_args!(
                        "Error while recording job outcomes, giving up at shutdown: {e}; \
                         jobs {:?} stay locked until a live worker rescues them",
                        grouped.ids()
                    ));
                    return;
                }
                shared.say_error(format_args!(
                    "Error while recording job outcomes: {e}; retrying in {:.1}s",
                    wait.as_secs_f64()
                ));
                let pause = if stopping {
                    wait.min(limit.saturating_duration_since(Instant::now()))
                } else {
                    wait
                };
                std::thread::sleep(pause);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl Grouped {
    fn ids(&self) -> Vec<JobId> {
        let retried = self.retry.iter().map(|r| r.id);
        let failed = self.fail.iter().map(|f| f.id);
        let mut ids: Vec<JobId> = self
            .complete
            .iter()
            .copied()
            .chain(retried)
            .chain(failed)
            .collect();
        ids.extend(&self.release);
        ids
    }
}

/// Writes each group, emptying it once written, so a retry after an error repeats only
/// what is left.
fn write(shared: &Shared, owner: &str, g: &mut Grouped) -> crate::Result<()> {
    let store = shared.db.store();
    if !g.complete.is_empty() {
        store.job_complete(owner, &g.complete)?;
        g.complete.clear();
    }
    if !g.retry.is_empty() {
        store.job_retry(owner, &g.retry)?;
        g.retry.clear();
    }
    if !g.fail.is_empty() {
        store.job_fail(owner, &g.fail)?;
        g.fail.clear();
    }
    if !g.release.is_empty() {
        store.job_unlock(owner, &g.release)?;
        g.release.clear();
    }
    Ok(())
}
