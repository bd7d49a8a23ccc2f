//! The slot table: every job this worker holds, by id, with the state it is in. One lock
//! guards it all, and every change goes through a transition method here:
//!
//! ```text
//!  claim ──► Claimed ──(an executor takes it)──► Starting ──► Running ──(returns)──► Finished
//!               │                                                │                      │
//!               │ (shutdown: released)              (max_run_time passes)   (outcome written:
//!               ▼                                                ▼            slot removed)
//!            removed                                        Overrunning ──(returns)──► Finished
//!
//!  declared dead (heartbeat), or a fast lane's transaction failed (its jobs only):
//!  Claimed → removed; Starting, Running, Overrunning → Lost
//!  (a Lost job's outcome is never recorded: its row is no longer this worker's)
//! ```
//!
//! Capacity counts Claimed, Starting and Running slots: an overrunning job has a thread of its
//! own and no longer holds one of the `concurrency` places.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::model::{JobId, JobRow};
use crate::registry::LoadedJob;

/// Where one held job is.
enum State {
    /// Claimed, waiting for an executor.
    Claimed,
    /// A fast lane let it go unstarted, and its row is free once the lane's transaction has
    /// ended: it holds its place until then, and a claim that takes the row again claims it
    /// afresh.
    Returning,
    /// Taken by an executor, which is loading it.
    Starting,
    /// Being performed.
    Running(Run),
    /// Past its max_run_time: the attempt is recorded, the lock kept until the code returns.
    Overrunning(Run),
    /// Its outcome is with the completer.
    Finished,
    /// This worker was declared dead while holding it: nothing about it may be recorded.
    Lost,
}

/// A job being performed.
#[derive(Clone)]
pub(super) struct Run {
    pub deadline: Instant,
    pub max_run_time: Duration,
    /// The job's display name, for log lines.
    pub name: String,
    pub job: Arc<dyn LoadedJob>,
    /// Its start is recorded in the database (`started_at`).
    pub recorded: bool,
    /// Past its deadline the job is fenced by the watchdog (sync jobs); an async job's
    /// future is dropped at the deadline instead.
    pub fenced: bool,
    /// Set when the job is cancelled; its context reads the same signal.
    pub cancel: Arc<crate::context::CancelSignal>,
}

struct Slot {
    row: JobRow,
    /// The worker name the row was claimed under: every write about it uses this name.
    owner: Arc<str>,
    state: State,
}

#[derive(Default)]
struct Table {
    slots: HashMap<JobId, Slot>,
    waiting: VecDeque<JobId>,
    /// No more jobs will be added: executors exit once `waiting` is empty.
    closed: bool,
    /// Jobs that may run at once, sync and async together.
    concurrency: usize,
    /// [`Table::active`] and [`Table::in_flight`], kept as the states change: an executor
    /// asks for every job it takes, and counting a thousand slots each time cost more than
    /// the job.
    counts: Counts,
    /// Batches of outcomes written so far ([`Slots::written`]).
    writes: u64,
}

/// Slots by the places they hold: (starting or running, claimed or starting or running).
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    active: usize,
    in_flight: usize,
}

impl Counts {
    /// What one slot in `state` adds.
    fn of(state: &State) -> Counts {
        match state {
            State::Claimed | State::Returning => Counts {
                active: 0,
                in_flight: 1,
            },
            State::Starting | State::Running(_) => Counts {
                active: 1,
                in_flight: 1,
            },
            State::Overrunning(_) | State::Finished | State::Lost => Counts::default(),
        }
    }

    /// A slot went from `from` to `to` (a removed one to `Finished`, which holds nothing).
    fn moved(&mut self, from: Counts, to: &State) {
        let to = Counts::of(to);
        self.active = self.active + to.active - from.active;
        self.in_flight = self.in_flight + to.in_flight - from.in_flight;
    }
}

impl Table {
    /// Jobs starting or running within the concurrency bound (overrunning ones have a thread
    /// of their own and are not counted).
    fn active(&self) -> usize {
        debug_assert_eq!(self.counts, self.count());
        self.counts.active
    }

    fn in_flight(&self) -> usize {
        debug_assert_eq!(self.counts, self.count());
        self.counts.in_flight
    }

    /// The counts, counted: after the changes of the rarer transitions.
    fn count(&self) -> Counts {
        let mut counts = Counts::default();
        for slot in self.slots.values() {
            counts.moved(Counts::default(), &slot.state);
        }
        counts
    }

    fn recount(&mut self) {
        self.counts = self.count();
    }
}

/// How an executor's job ended, as the table saw it.
pub(super) enum Ended {
    /// Record the outcome under this owner name.
    Record(Arc<str>),
    /// The job overran: its attempt is recorded; release the lock under this owner name.
    Overran(Arc<str>),
    /// The worker lost the job (declared dead): record nothing.
    Lost,
}

/// A job past its deadline, for the watchdog.
pub(super) struct Overdue {
    pub row: JobRow,
    pub owner: Arc<str>,
    pub run: Run,
}

/// A job still running at the shutdown timeout.
pub(super) struct Interrupted {
    pub row: JobRow,
    pub owner: Arc<str>,
    pub name: String,
    /// How long it had run.
    pub runtime: Duration,
}

/// What declaring this worker dead took from it.
pub(super) struct LostJobs {
    /// Claimed jobs that never started.
    pub unstarted: Vec<JobId>,
    /// Jobs whose code is still running; their outcomes will be dropped.
    pub running: Vec<(JobId, String)>,
}

pub(super) struct Slots {
    table: Mutex<Table>,
    changed: Condvar,
}

impl Slots {
    /// A table for a worker running up to `concurrency` jobs at once.
    pub(super) fn new(concurrency: usize) -> Self {
        Slots {
            table: Mutex::new(Table {
                concurrency: concurrency.max(1),
                ..Table::default()
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// New claims, in the order they should start. A row whose job this worker holds
    /// already is not added, and is returned: it was claimed again because the fast lane
    /// that had it ended with its connection (its outcome, or its run, is still under way
    /// here), and must not run twice at once.
    pub(super) fn add_claimed(&self, owner: &Arc<str>, rows: Vec<JobRow>) -> Vec<JobId> {
        let mut table = self.lock();
        let mut held = Vec::new();
        for row in rows {
            match table.slots.get(&row.id).map(|s| &s.state) {
                Some(State::Returning) => {
                    table
                        .counts
                        .moved(Counts::of(&State::Returning), &State::Finished);
                }
                Some(_) => {
                    held.push(row.id);
                    continue;
                }
                None => {}
            }
            table.waiting.push_back(row.id);
            table.slots.insert(
                row.id,
                Slot {
                    row,
                    owner: owner.clone(),
                    state: State::Claimed,
                },
            );
            table.counts.moved(Counts::default(), &State::Claimed);
        }
        self.changed.notify_all();
        held
    }

    /// Jobs that hold one of the `concurrency + read_ahead` places.
    pub(super) fn in_flight(&self) -> usize {
        self.lock().in_flight()
    }

    /// Waits until fewer than `below` jobs are in flight, or `timeout` passes; returns how
    /// many are.
    pub(super) fn wait_in_flight_below(&self, below: usize, timeout: Duration) -> usize {
        self.wait_below(below, Instant::now() + timeout, Table::in_flight)
    }

    /// Waits until every finished job's outcome is written (the completer calls
    /// [`Slots::written`]), or `deadline` passes; returns how many are still unwritten. At
    /// shutdown, so that the completer is told to stop only after it has every outcome.
    pub(super) fn wait_written(&self, deadline: Instant) -> usize {
        self.wait_below(1, deadline, |table| {
            table
                .slots
                .values()
                .filter(|s| matches!(s.state, State::Finished))
                .count()
        })
    }

    /// How many batches of outcomes have been written: a claim that found nothing may have
    /// run before an outcome it waited on (a sequence's head, a key's running job) was
    /// written, if this moved since.
    pub(super) fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Waits until `count` of the table is below `below`, or `deadline` passes; returns it.
    fn wait_below(
        &self,
        below: usize,
        deadline: Instant,
        count: impl Fn(&Table) -> usize,
    ) -> usize {
        let mut table = self.lock();
        loop {
            let n = count(&table);
            let now = Instant::now();
            if n < below || now >= deadline {
                return n;
            }
            table = self
                .changed
                .wait_timeout(table, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The next claimed job for an executor (Claimed → Starting), waiting for one and for a
    /// place within the concurrency bound (async jobs leave their executor free, so the bound
    /// is kept here); `None` once the table is closed and nothing waits.
    pub(super) fn next(&self) -> Option<(JobRow, Arc<str>)> {
        let mut table = self.lock();
        loop {
            let room = table.active() < table.concurrency;
            if let Some(id) = room.then(|| table.waiting.pop_front()).flatten() {
                let t = &mut *table;
                if let Some(slot) = t.slots.get_mut(&id) {
                    if matches!(slot.state, State::Claimed) {
                        slot.state = State::Starting;
                        t.counts
                            .moved(Counts::of(&State::Claimed), &State::Starting);
                        return Some((slot.row.clone(), slot.owner.clone()));
                    }
                }
                continue;
            }
            if table.closed && table.waiting.is_empty() {
                return None;
            }
            table = self.changed.wait(table).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Starting → Running. False if the job was lost meanwhile (then it must not run).
    pub(super) fn running(&self, id: JobId, run: Run) -> bool {
        let mut table = self.lock();
        match table.slots.get_mut(&id) {
            Some(slot) if matches!(slot.state, State::Starting) => {
                slot.state = State::Running(run);
                true
            }
            Some(slot) if matches!(slot.state, State::Lost) => {
                table.slots.remove(&id);
                self.changed.notify_all();
                false
            }
            _ => false,
        }
    }

    /// An executor is done with a job (it returned, or never ran): Starting/Running →
    /// Finished, Overrunning → Finished, Lost → removed.
    pub(super) fn ended(&self, id: JobId) -> Ended {
        self.ended_and(id, || {})
    }

    /// [`Slots::ended`], calling `on_record` first when the outcome is to be recorded, before
    /// the job stops counting as in flight: so that whoever sees the worker idle also sees
    /// the job counted.
    pub(super) fn ended_and(&self, id: JobId, on_record: impl FnOnce()) -> Ended {
        let mut table = self.lock();
        let t = &mut *table;
        let ended = match t.slots.get_mut(&id) {
            Some(slot) => match slot.state {
                State::Overrunning(_) => {
                    slot.state = State::Finished;
                    Ended::Overran(slot.owner.clone())
                }
                State::Lost => {
                    t.slots.remove(&id);
                    Ended::Lost
                }
                _ => {
                    on_record();
                    let from = Counts::of(&slot.state);
                    slot.state = State::Finished;
                    t.counts.moved(from, &State::Finished);
                    Ended::Record(slot.owner.clone())
                }
            },
            None => Ended::Lost,
        };
        self.changed.notify_all();
        ended
    }

    /// Outcomes the completer has written: their slots go (overrunning ones, whose attempt was
    /// written while their code still runs, stay).
    pub(super) fn written(&self, ids: &[JobId]) {
        let mut table = self.lock();
        table.writes += 1;
        for id in ids {
            if matches!(table.slots.get(id).map(|s| &s.state), Some(State::Finished)) {
                table.slots.remove(id);
            }
        }
        self.changed.notify_all();
    }

    /// Running jobs past their deadline become Overrunning; returned for the watchdog.
    pub(super) fn overdue(&self, now: Instant) -> Vec<Overdue> {
        let mut table = self.lock();
        let mut overdue = Vec::new();
        for slot in table.slots.values_mut() {
            if let State::Running(run) = &slot.state {
                if run.fenced && now >= run.deadline {
                    let run = run.clone();
                    overdue.push(Overdue {
                        row: slot.row.clone(),
                        owner: slot.owner.clone(),
                        run: run.clone(),
                    });
                    slot.state = State::Overrunning(run);
                }
            }
        }
        table.recount();
        if !overdue.is_empty() {
            self.changed.notify_all();
        }
        overdue
    }

    /// Running jobs not cancelled yet: what the cancel poll asks about.
    pub(super) fn cancellable(&self) -> Vec<JobId> {
        self.lock()
            .slots
            .iter()
            .filter(|(_, s)| matches!(&s.state, State::Running(run) if !run.cancel.is_set()))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Signals these running jobs to stop; returns the row and display name of each one that
    /// was running.
    pub(super) fn cancel(&self, ids: &[JobId]) -> Vec<(JobRow, String)> {
        let table = self.lock();
        ids.iter()
            .filter_map(|id| match table.slots.get(id) {
                Some(Slot {
                    row,
                    state: State::Running(run),
                    ..
                }) => {
                    run.cancel.cancel();
                    Some((row.clone(), run.name.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Running and overrunning jobs whose start is not yet recorded, by owner.
    pub(super) fn unrecorded_starts(&self) -> Vec<(Arc<str>, JobId)> {
        self.lock()
            .slots
            .iter()
            .filter(|(_, s)| match &s.state {
                State::Running(run) | State::Overrunning(run) => !run.recorded,
                _ => false,
            })
            .map(|(id, s)| (s.owner.clone(), *id))
            .collect()
    }

    /// Their starts are recorded now.
    pub(super) fn starts_recorded(&self, ids: &[JobId]) {
        let mut table = self.lock();
        for id in ids {
            if let Some(Slot {
                state: State::Running(run) | State::Overrunning(run),
                ..
            }) = table.slots.get_mut(id)
            {
                run.recorded = true;
            }
        }
    }

    /// Jobs running for at least `long` (not yet past their deadline).
    pub(super) fn running_for(&self, long: Duration) -> usize {
        let now = Instant::now();
        self.lock()
            .slots
            .values()
            .filter(|s| match &s.state {
                State::Running(run) => run
                    .deadline
                    .checked_sub(run.max_run_time)
                    .is_some_and(|started| now.saturating_duration_since(started) >= long),
                _ => false,
            })
            .count()
    }

    /// Jobs whose code is running (overrunning ones included), for the heartbeat.
    pub(super) fn running_count(&self) -> usize {
        self.lock()
            .slots
            .values()
            .filter(|s| matches!(s.state, State::Running(_) | State::Overrunning(_)))
            .count()
    }

    /// Overrunning jobs whose code has not returned yet.
    pub(super) fn overrunning_count(&self) -> usize {
        self.lock()
            .slots
            .values()
            .filter(|s| matches!(s.state, State::Overrunning(_)))
            .count()
    }

    /// Every job id this worker holds a lock on under `owner` (lost ones excluded).
    pub(super) fn held(&self, owner: &str) -> Vec<JobId> {
        self.lock()
            .slots
            .iter()
            .filter(|(_, s)| &*s.owner == owner && !matches!(s.state, State::Lost))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Claimed jobs no executor has taken: removed, to be released untouched.
    pub(super) fn take_unstarted(&self) -> Vec<(Arc<str>, JobId)> {
        let mut table = self.lock();
        let waiting: Vec<JobId> = table.waiting.drain(..).collect();
        let mut taken = Vec::new();
        for id in waiting {
            if let Some(slot) = table.slots.get_mut(&id) {
                if matches!(slot.state, State::Claimed) {
                    slot.state = State::Finished;
                    taken.push((slot.owner.clone(), id));
                }
            }
        }
        table.recount();
        self.changed.notify_all();
        taken
    }

    /// Of a fast lane's jobs at its end, those no executor has taken (Claimed → Returning):
    /// they are let go with the lane's locks.
    pub(super) fn take_back(&self, ids: &[JobId]) -> HashSet<JobId> {
        let mut table = self.lock();
        let t = &mut *table;
        let mut taken = HashSet::new();
        for id in ids {
            if let Some(slot) = t.slots.get_mut(id) {
                if matches!(slot.state, State::Claimed) {
                    slot.state = State::Returning;
                    taken.insert(*id);
                }
            }
        }
        if !taken.is_empty() {
            t.waiting.retain(|id| !taken.contains(id));
        }
        taken
    }

    /// The lane that let these jobs go has ended: those not claimed again meanwhile go.
    pub(super) fn returned(&self, ids: &HashSet<JobId>) {
        let mut table = self.lock();
        let t = &mut *table;
        for id in ids {
            if matches!(t.slots.get(id).map(|s| &s.state), Some(State::Returning)) {
                t.slots.remove(id);
                t.counts
                    .moved(Counts::of(&State::Returning), &State::Finished);
            }
        }
        self.changed.notify_all();
    }

    /// Running jobs at the shutdown timeout: they are unlocked for another worker, so their
    /// outcomes, should their code still return, are not recorded (→ Lost).
    pub(super) fn interrupt_running(&self) -> Vec<Interrupted> {
        let mut table = self.lock();
        let mut interrupted = Vec::new();
        for slot in table.slots.values_mut() {
            if let State::Running(run) = &slot.state {
                let started = run.deadline.checked_sub(run.max_run_time);
                interrupted.push(Interrupted {
                    row: slot.row.clone(),
                    owner: slot.owner.clone(),
                    name: run.name.clone(),
                    runtime: started.map_or(Duration::ZERO, |s| s.elapsed()),
                });
                slot.state = State::Lost;
            }
        }
        table.recount();
        self.changed.notify_all();
        interrupted
    }

    /// This worker was declared dead: every job it holds is no longer its own.
    pub(super) fn lose_all(&self) -> LostJobs {
        self.lose_where(|_| true)
    }

    /// [`Slots::lose_all`] for these jobs only (a fast lane's, whose transaction failed
    /// before they became ordinary claims).
    pub(super) fn lose(&self, ids: &[JobId]) -> LostJobs {
        let ids: std::collections::HashSet<JobId> = ids.iter().copied().collect();
        self.lose_where(|id| ids.contains(&id))
    }

    fn lose_where(&self, which: impl Fn(JobId) -> bool) -> LostJobs {
        let mut table = self.lock();
        table.waiting.retain(|id| !which(*id));
        let mut lost = LostJobs {
            unstarted: Vec::new(),
            running: Vec::new(),
        };
        table.slots.retain(|id, slot| match &slot.state {
            _ if !which(*id) => true,
            State::Claimed | State::Returning => {
                lost.unstarted.push(*id);
                false
            }
            State::Starting => {
                slot.state = State::Lost;
                true
            }
            State::Running(run) | State::Overrunning(run) => {
                lost.running.push((*id, run.name.clone()));
                slot.state = State::Lost;
                true
            }
            // The completer's write of a finished job is fenced by the database.
            State::Finished | State::Lost => true,
        });
        table.recount();
        self.changed.notify_all();
        lost
    }

    /// No more jobs will be claimed: idle executors exit.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// True if the job is still held and not lost.
    pub(super) fn is_lost(&self, id: JobId) -> bool {
        !matches!(
            self.lock().slots.get(&id).map(|s| &s.state),
            Some(state) if !matches!(state, State::Lost)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_a_lane_lets_go_hold_their_place_until_it_ends_and_may_be_claimed_afresh() {
        let slots = Slots::new(1);
        let owner: Arc<str> = "w".into();
        assert!(slots
            .add_claimed(&owner, (1..=3).map(JobRow::claimed_for_test).collect())
            .is_empty());
        let (started, _) = slots.next().expect("job 1 starts");
        assert_eq!(started.id, 1);
        let taken = slots.take_back(&[1, 2, 3]);
        assert_eq!(taken, HashSet::from([2, 3]), "job 1 had started");
        assert_eq!(
            slots.in_flight(),
            3,
            "let go, not yet free: still in flight"
        );
        // The lane ended and another claim took job 3 before its slot went: it is a fresh
        // claim, not a job held twice.
        assert!(slots
            .add_claimed(&owner, vec![JobRow::claimed_for_test(3)])
            .is_empty());
        slots.returned(&taken);
        assert_eq!(slots.in_flight(), 2, "jobs 1 and 3");
        assert!(slots.is_lost(2));
        assert!(!slots.is_lost(3));
        // Job 1 ends; job 3 is the next to start, and job 2 never starts here.
        slots.ended(1);
        slots.written(&[1]);
        assert_eq!(slots.next().map(|(r, _)| r.id), Some(3));
        assert_eq!(slots.in_flight(), 1);
    }
}
