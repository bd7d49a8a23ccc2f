//! The completer: writes job outcomes in batches. Whatever has arrived since the last write
//! goes in one statement per kind (delete, reschedule, fail, release), so a busy worker makes
//! few commits per job while an idle one writes at once. A write that fails is retried until
//! the database takes it: a job that succeeded is never rescheduled because its delete failed.
//! Every write names the worker the row was claimed under, and matches only rows still locked
//! by it: a worker declared dead meanwhile changes nothing (fencing).

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lane::Closing;
use super::Shared;
use crate::model::{JobFilter, JobId};
use crate::store::{Fail, Finished, Recorded, Retry};

/// Most outcomes written per round of statements.
const BATCH: usize = 1000;

pub(super) use super::outcome::Outcome;

/// What reaches the completer.
#[derive(Debug)]
pub(super) enum Message {
    /// An outcome, for a row claimed under this worker name.
    Write(Arc<str>, Outcome),
    /// The worker is done: write what is queued, then stop.
    Shutdown,
    /// A fast lane opened: look again at when lanes must end.
    Wake,
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
    // Ordinary outcomes, waiting for this worker's lanes to end (see `end_lanes`).
    let mut waiting: BTreeMap<Arc<str>, Vec<Outcome>> = BTreeMap::new();
    while let Some(first) = pending.take().or_else(|| receive(shared, outcomes)) {
        let mut size = 0;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Shutdown => shutting_down = true,
                Message::Wake => {}
                Message::Write(owner, outcome) => {
                    if let Some(outcome) = shared.lanes.route(outcome) {
                        waiting.entry(owner).or_default().push(outcome);
                        size += 1;
                    }
                }
            }
            if size < BATCH {
                next = outcomes.try_recv().ok();
            }
        }
        for (owner, after) in end_lanes(shared, shutting_down, &mut give_up_at) {
            waiting.entry(owner).or_default().extend(after);
        }
        if !waiting.is_empty() {
            // At the stop every lane has ended just now.
            let quiet = shared.lanes.hold();
            if quiet || shutting_down {
                write_waiting(shared, &mut waiting, &mut give_up_at);
            }
        }
        if shutting_down {
            // Stop once nothing more is queued; what is, goes round again.
            match outcomes.try_recv() {
                Ok(message) => pending = Some(message),
                Err(_) => return,
            }
        }
    }
    // Every sender is gone: end the lanes still open (their transactions would otherwise end
    // with their connections, and their finished jobs run again).
    for (owner, after) in end_lanes(shared, true, &mut give_up_at) {
        waiting.entry(owner).or_default().extend(after);
    }
    write_waiting(shared, &mut waiting, &mut give_up_at);
}

/// Writes the ordinary outcomes, at most [`BATCH`] a round, and lets lanes open again.
fn write_waiting(
    shared: &Shared,
    waiting: &mut BTreeMap<Arc<str>, Vec<Outcome>>,
    give_up_at: &mut Option<Instant>,
) {
    for (owner, mut outcomes) in std::mem::take(waiting) {
        while !outcomes.is_empty() {
            let rest = outcomes.split_off(outcomes.len().min(BATCH));
            write_until_done(shared, &owner, outcomes, give_up_at);
            outcomes = rest;
        }
    }
    shared.lanes.resume();
}

/// Ends the lanes that are due, or (`all`) every open one; returns the failed jobs' outcomes
/// to write after, by owner. Ordinary writes wait until this worker has no lane open: such a
/// write may wait for a row lock, and another worker's lane may hold one (a `FOR UPDATE` that
/// re-checks a row changed since its snapshot and passes it over keeps its lock); if that
/// worker's completer were waiting likewise for a lane of this one, neither lane would ever
/// end. Lanes themselves never wait: their claim skips locked rows and their end touches
/// only their own. So the completer holds the lanes (none opens) and writes once the open
/// ones have ended by their own course, within their window: ending them early instead
/// would make ordinary claims of all their unfinished jobs, two more writes each.
///
/// A lane whose end failed leaves its finished rows to delete, and that delete may wait for
/// a row lock too: so first the lanes are held, the claim under way ends, and every lane of
/// this worker still open is ended (one may hold a row of the failed lane's: it lets it go).
fn end_lanes(
    shared: &Shared,
    all: bool,
    give_up_at: &mut Option<Instant>,
) -> BTreeMap<Arc<str>, Vec<Outcome>> {
    let mut after: BTreeMap<Arc<str>, Vec<Outcome>> = BTreeMap::new();
    let mut failed = Vec::new();
    // Whether the lanes were held before a failed end held them (then they stay held).
    let mut held_before = None;
    while let Some(lane) =
        shared
            .lanes
            .closing(Instant::now(), all || held_before.is_some(), |ids| {
                shared.slots.take_back(ids)
            })
    {
        let owner = lane.owner.clone();
        match end_lane(shared, lane) {
            Ok(failed_jobs) if failed_jobs.is_empty() => {}
            Ok(failed_jobs) => after.entry(owner).or_default().extend(failed_jobs),
            Err(abandoned) => {
                failed.push(abandoned);
                if held_before.is_none() {
                    held_before = Some(shared.lanes.held());
                    shared.lanes.hold();
                    shared.lanes.wait_for_claim();
                }
            }
        }
    }
    for abandoned in failed {
        abandon(shared, abandoned, give_up_at);
    }
    if held_before == Some(false) {
        shared.lanes.resume();
    }
    after
}

/// The next message; while lanes are open, a [`Message::Wake`] when the first must end.
fn receive(shared: &Shared, outcomes: &Receiver<Message>) -> Option<Message> {
    let Some(deadline) = shared.lanes.next_deadline() else {
        return outcomes.recv().ok();
    };
    match outcomes.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(message) => Some(message),
        Err(RecvTimeoutError::Timeout) => Some(Message::Wake),
        Err(RecvTimeoutError::Disconnected) => None,
    }
}

/// A lane whose end failed: nothing of it was written, and its rows are free again.
struct Abandoned {
    owner: Arc<str>,
    /// Every job it took, and those of them that finished: without a result, and with one.
    ids: Vec<JobId>,
    done: Vec<JobId>,
    recorded: Vec<Recorded>,
    /// The slots to free once the finished rows are deleted.
    slots: Vec<JobId>,
}

/// Ends a fast lane in its transaction: finished jobs deleted (their results kept), those not
/// started let go, the rest (running, failed) made ordinary claims. Returns the failed jobs'
/// outcomes, to be written the ordinary way now that their rows are claimed. If the transaction fails
/// nothing of it was written and its rows are free again: the lane is returned, for its
/// finished rows to be deleted once the database answers ([`abandon`]). One another worker
/// claims first runs again (at-least-once); its other jobs are no longer this worker's.
fn end_lane(shared: &Shared, lane: Closing) -> Result<Vec<Outcome>, Abandoned> {
    let mut complete = Vec::new();
    let mut recorded = Vec::new();
    let mut released = Vec::new();
    let mut promote = Vec::new();
    let mut after = Vec::new();
    for outcome in lane.outcomes {
        match outcome {
            Outcome::Complete(id) => complete.push(id),
            Outcome::Recorded(r) => recorded.push(r),
            // Not performed: its lock ends with the transaction. (A job completed in its own
            // transaction is never in a lane, which skips its type; if one were, its row
            // would be gone already.)
            Outcome::Release(id) | Outcome::Committed(id) => released.push(id),
            failed => {
                promote.push(failed.id());
                after.push(failed);
            }
        }
    }
    // Jobs no executor had taken are let go with the lane's locks, unwritten, for the next
    // claim (this worker's or another's): promoting them would cost two writes each.
    let unstarted = lane.unstarted;
    shared.lanes.gave_back(unstarted.len());
    let unfinished: Vec<JobId> = lane
        .unfinished
        .into_iter()
        .filter(|id| !shared.slots.is_lost(*id))
        .collect();
    promote.extend(&unfinished);
    let store = shared.db.store();
    let finished: Vec<JobId> = complete
        .iter()
        .copied()
        .chain(recorded.iter().map(|r| r.id))
        .collect();
    let ids: Vec<JobId> = (finished.iter().chain(&released).chain(&promote))
        .copied()
        .collect();
    let done = Finished {
        complete: &complete,
        recorded: &recorded,
    };
    let ended = store.lane_finish(lane.lane, &lane.owner, done, &promote);
    shared.slots.returned(&unstarted);
    released.extend(&finished);
    let Err(e) = ended else {
        shared.slots.written(&released);
        return Ok(after);
    };
    let lost = shared.slots.lose(&unfinished);
    shared.say_error(format_args!(
        "Error while ending a fast lane: {e}; its {} finished job(s) are deleted once the \
         database answers (one another worker claims first runs again), its {} failed job(s) \
         run again without this attempt counted, and {} running job(s) are no \
         longer this worker's: {:?}",
        finished.len(),
        after.len(),
        unfinished.len(),
        unfinished
    ));
    for (id, name) in &lost.running {
        shared.say_error(format_args!(
            "Job {name} (id={id}) lost its lock: its outcome will not be recorded"
        ));
    }
    // The slots go only once the rows are: until then a claim of this worker that takes
    // one again finds its job held, and lets it go (see `Slots::add_claimed`).
    released.extend(after.iter().map(Outcome::id));
    Err(Abandoned {
        owner: lane.owner,
        ids,
        done: complete,
        recorded,
        slots: released,
    })
}

/// Deletes a failed lane's finished rows once the database answers (none of this worker's
/// lanes is open: see [`end_lanes`]), then frees its slots. A row another worker claimed
/// first runs again (at-least-once); one this worker claimed again meanwhile is deleted too,
/// as its job is let go.
fn abandon(shared: &Shared, lane: Abandoned, give_up_at: &mut Option<Instant>) {
    let store = shared.db.store();
    let deleted = until_done(
        shared,
        give_up_at,
        "deleting a fast lane's finished jobs",
        || {
            let finished = Finished {
                complete: &lane.done,
                recorded: &lane.recorded,
            };
            store.lane_abandoned(&lane.owner, &lane.ids, finished)
        },
    );
    if let Err(e) = deleted {
        shared.say_error(format_args!(
            "Error while deleting a fast lane's finished jobs, giving up at shutdown: {e}; \
             jobs {:?} may run again",
            (lane.done.iter().copied())
                .chain(lane.recorded.iter().map(|r| r.id))
                .collect::<Vec<_>>()
        ));
    }
    shared.slots.written(&lane.slots);
}

#[derive(Default)]
struct Grouped {
    complete: Vec<JobId>,
    recorded: Vec<Recorded>,
    retry: Vec<Retry>,
    fail: Vec<Fail>,
    release: Vec<JobId>,
    /// Completed in their own transactions, which should have committed.
    committed: Vec<JobId>,
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
        grouped.add(outcome);
    }
    let written = until_done(shared, give_up_at, "recording job outcomes", || {
        write(shared, owner, &mut grouped)
    });
    if let Err(e) = written {
        shared.say_error(format_args!(
            "Error while recording job outcomes, giving up at shutdown: {e}; jobs {:?} stay \
             locked until a live worker rescues them",
            grouped.ids()
        ));
    }
}

/// Runs `attempt` until it succeeds, logging each failure as `Error while {what}`; once the
/// worker is stopping, only until `shutdown_timeout` after the first failure since the stop,
/// and then returns the last error.
fn until_done(
    shared: &Shared,
    give_up_at: &mut Option<Instant>,
    what: &str,
    mut attempt: impl FnMut() -> crate::Result<()>,
) -> crate::Result<()> {
    let mut wait = Duration::from_millis(50);
    loop {
        let Err(e) = attempt() else {
            return Ok(());
        };
        let stopping = shared.stop.is_set();
        let limit = if stopping {
            *give_up_at.get_or_insert_with(|| Instant::now() + shared.config.shutdown_timeout)
        } else {
            Instant::now() + wait
        };
        if stopping && Instant::now() >= limit {
            return Err(e);
        }
        shared.say_error(format_args!(
            "Error while {what}: {e}; retrying in {:.1}s",
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

impl Grouped {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Complete(id) => self.complete.push(id),
            Outcome::Recorded(r) => self.recorded.push(r),
            Outcome::Retry(r) => self.retry.push(r),
            Outcome::Fail(f) => self.fail.push(f),
            Outcome::Release(id) => self.release.push(id),
            Outcome::Committed(id) => self.committed.push(id),
        }
    }

    fn ids(&self) -> Vec<JobId> {
        let recorded = self.recorded.iter().map(|r| r.id);
        let retried = self.retry.iter().map(|r| r.id);
        let failed = self.fail.iter().map(|f| f.id);
        let mut ids: Vec<JobId> = self
            .complete
            .iter()
            .copied()
            .chain(recorded)
            .chain(retried)
            .chain(failed)
            .collect();
        ids.extend(&self.release);
        ids.extend(&self.committed);
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
    if !g.recorded.is_empty() {
        store.job_complete_recorded(owner, &g.recorded)?;
        g.recorded.clear();
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
    if !g.committed.is_empty() {
        for id in store.job_held(owner, &g.committed)? {
            uncommitted(shared, owner, id)?;
        }
        g.committed.clear();
    }
    Ok(())
}

/// A job whose `perform` returned `Ok` after completing its row in a transaction that did
/// not commit (the row is still held): a failed attempt, as if it had returned the error.
fn uncommitted(shared: &Shared, owner: &str, id: JobId) -> crate::Result<()> {
    let store = shared.db.store();
    let filter = JobFilter {
        id: Some(id),
        locked_by: Some(owner.to_owned()),
        ..JobFilter::default()
    };
    let Some(row) = store.job_list(&filter)?.into_iter().next() else {
        return Ok(());
    };
    let reason = "it completed its row with complete_in in a transaction that did not commit \
                  (rolled back, or not committed before perform returned Ok)";
    match super::retry::charged(shared, reason, &row) {
        Outcome::Retry(retry) => store.job_retry(owner, &[retry]),
        Outcome::Fail(fail) => store.job_fail(owner, &[fail]),
        _ => Ok(()),
    }
}
