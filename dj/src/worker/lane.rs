//! The worker's fast lanes (PostgreSQL; the store's `lane` says what a lane is in the
//! database). A batch of short jobs is claimed by locking its rows in a transaction that stays
//! open while they run; their outcomes gather here, and the completer ends the lane in that
//! transaction once every job has one, or once the lane has been open for [`WINDOW`]: then
//! the jobs still running become ordinary claims, written in the same transaction, and go on
//! as any other, and those no executor has taken are let go unwritten for the next claim. A lane's failed jobs are made ordinary
//! claims too, and their outcome is written the ordinary way after it.
//!
//! The producer takes a lane only when the jobs it claims should all finish within half the
//! window at the pace jobs have been finishing, so long jobs never hold a transaction open.
//! That pace is the jobs' own runtime; what a job costs the worker beside it (the handover
//! between threads, a CPU shared with other processes) shows only in the lanes themselves:
//! a lane whose window ends with jobs unfinished halves the size of the next ones, and a lane
//! that finishes at the size allowed lets the next grow by a quarter.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::outcome::Outcome;
use crate::model::JobId;
use crate::store::Lane;

/// The longest a lane stays open: its transaction holds the MVCC horizon this long at most
/// (beside its statements), and a job in it shows as running only once it is ended.
pub(super) const WINDOW: Duration = Duration::from_millis(100);

/// Lanes one worker keeps open at once: each holds a pooled connection.
pub(super) const MOST_OPEN: usize = 2;

/// What wakes the completer.
type Waker = Box<dyn Fn() + Send>;

/// The open lanes, and which job is in which.
#[derive(Default)]
pub(super) struct Lanes {
    open: Mutex<Open>,
    /// Wakes the completer when a lane opens, so that it ends it within the window.
    waker: Mutex<Option<Waker>>,
    /// The most jobs a lane may take (0: no bound yet).
    most: AtomicUsize,
    /// Jobs lanes took and let go unstarted at their end (the producer's count of claimed
    /// jobs leaves them out).
    given_back: AtomicU64,
}

#[derive(Default)]
struct Open {
    next: u64,
    lanes: HashMap<u64, OpenLane>,
    member: HashMap<JobId, u64>,
    /// Ordinary outcomes wait for the lanes to end: none may open.
    held: bool,
    /// The producer is claiming a lane: its rows may be locked already.
    claiming: bool,
}

struct OpenLane {
    lane: Lane,
    owner: Arc<str>,
    /// Jobs without an outcome yet.
    waiting: HashSet<JobId>,
    outcomes: Vec<Outcome>,
    deadline: Instant,
    /// The jobs it took, and the bound on that when it was claimed.
    size: usize,
    bound: usize,
}

/// A lane to end now.
pub(super) struct Closing {
    pub lane: Lane,
    pub owner: Arc<str>,
    pub outcomes: Vec<Outcome>,
    /// Its jobs without an outcome that an executor has taken.
    pub unfinished: Vec<JobId>,
    /// Its jobs no executor has taken: let go with its locks (see `Slots::take_back`).
    pub unstarted: HashSet<JobId>,
}

impl Lanes {
    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How [`Lanes::open`] wakes the completer.
    pub(super) fn wake_with(&self, wake: impl Fn() + Send + 'static) {
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(wake));
    }

    /// A lane claimed for `owner` holding `ids`; `hand_over` gives the jobs to the slot
    /// table while the lanes are locked, so that the completer never ends a lane whose jobs
    /// the table does not hold yet (it would take them for lost, and free their rows). The
    /// jobs it returns, which the table holds already (for a lane whose end failed), are not
    /// run: the lane lets them go. Returns how many it took to run.
    pub(super) fn open(
        &self,
        lane: Lane,
        owner: Arc<str>,
        ids: &[JobId],
        hand_over: impl FnOnce() -> Vec<JobId>,
    ) -> usize {
        let taken = {
            let mut open = self.lock();
            open.claiming = false;
            let key = open.next;
            open.next += 1;
            // Neither completed nor promoted, held jobs are let go at the lane's end; no
            // outcome of theirs is routed here, as the lane that holds them is another.
            let held: HashSet<JobId> = hand_over().into_iter().collect();
            let waiting: HashSet<JobId> = ids
                .iter()
                .copied()
                .filter(|id| !held.contains(id))
                .collect();
            for id in &waiting {
                open.member.insert(*id, key);
            }
            let taken = waiting.len();
            open.lanes.insert(
                key,
                OpenLane {
                    lane,
                    owner,
                    waiting,
                    outcomes: Vec::with_capacity(taken),
                    deadline: Instant::now() + WINDOW,
                    size: taken,
                    bound: self.most.load(Ordering::Relaxed),
                },
            );
            taken
        };
        self.wake();
        taken
    }

    fn wake(&self) {
        if let Some(wake) = &*self.waker.lock().unwrap_or_else(|e| e.into_inner()) {
            wake();
        }
    }

    /// Whether the producer may claim a lane now: fewer than [`MOST_OPEN`] are open and no
    /// ordinary write is waiting. If so the claim counts as a lane until [`Lanes::open`]
    /// or [`Lanes::claim_ended`].
    pub(super) fn start_claim(&self) -> bool {
        let mut open = self.lock();
        if open.held || open.lanes.len() >= MOST_OPEN {
            return false;
        }
        open.claiming = true;
        true
    }

    /// The lane claim begun with [`Lanes::start_claim`] is over (and its rows, if it made
    /// the ordinary claim instead, are in the slot table).
    pub(super) fn claim_ended(&self) {
        self.lock().claiming = false;
        self.wake();
    }

    /// Ordinary outcomes are waiting to be written: no lane opens until [`Lanes::resume`].
    /// True once no lane is open or being claimed, when they may be written (see the
    /// completer's `end_lanes` for why they wait).
    pub(super) fn hold(&self) -> bool {
        let mut open = self.lock();
        open.held = true;
        open.lanes.is_empty() && !open.claiming
    }

    /// Whether the lanes are held (only the completer holds and resumes them).
    pub(super) fn held(&self) -> bool {
        self.lock().held
    }

    /// Waits until no lane claim is under way (one is a single statement, bounded by the
    /// statement timeout).
    pub(super) fn wait_for_claim(&self) {
        while self.lock().claiming {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The waiting ordinary outcomes are written: lanes may open again.
    pub(super) fn resume(&self) {
        self.lock().held = false;
    }

    /// `count` jobs of a lane were let go at its end without starting.
    pub(super) fn gave_back(&self, count: usize) {
        self.given_back.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// How many jobs lanes have let go unstarted, in all.
    pub(super) fn given_back(&self) -> u64 {
        self.given_back.load(Ordering::Relaxed)
    }

    /// The most jobs the next lane may take, if lanes have been bounded.
    pub(super) fn most(&self) -> Option<usize> {
        Some(self.most.load(Ordering::Relaxed)).filter(|&most| most > 0)
    }

    /// A lane ended by its own course (not cut short by the worker): one whose window ran
    /// out with jobs unfinished bounds the next at half its size; one done within it at the bound
    /// raises it.
    fn learn(&self, lane: &OpenLane, now: Instant) {
        if !lane.waiting.is_empty() && lane.deadline <= now {
            // Lanes open together learn in turn: the one that ran out keeps the bound below
            // its half, never above a smaller bound another set.
            let half = (lane.size / 2).max(1);
            let _ = self
                .most
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |most| {
                    (most == 0 || most > half).then_some(half)
                });
        } else if lane.waiting.is_empty() && lane.bound > 0 && lane.size >= lane.bound {
            let grown = lane.bound.saturating_add((lane.bound / 4).max(1));
            let _ =
                self.most
                    .compare_exchange(lane.bound, grown, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Whether this job is in an open lane (its row is not yet an ordinary claim).
    pub(super) fn contains(&self, id: JobId) -> bool {
        self.lock().member.contains_key(&id)
    }

    /// Keeps the outcome of a job in an open lane for the lane's end (waking the completer
    /// once the lane has every outcome); gives back any other.
    pub(super) fn route(&self, outcome: Outcome) -> Option<Outcome> {
        let complete = {
            let mut open = self.lock();
            let id = outcome.id();
            let Some(key) = open.member.remove(&id) else {
                return Some(outcome);
            };
            let lane = open.lanes.get_mut(&key).expect("a member's lane is open");
            lane.waiting.remove(&id);
            lane.outcomes.push(outcome);
            lane.waiting.is_empty()
        };
        if complete {
            self.wake();
        }
        None
    }

    /// The next lane to end: one with every outcome in, one open for the whole window, or
    /// (`all`, when the worker stops) any. One at a time, each as it ends: the jobs of the
    /// lanes still open go on finishing into them meanwhile. `take_back` takes its jobs no
    /// executor has taken from the slot table while the lanes are locked, so that each of
    /// its jobs either has its outcome here or was taken by an executor before it closed.
    pub(super) fn closing(
        &self,
        now: Instant,
        all: bool,
        take_back: impl FnOnce(&[JobId]) -> HashSet<JobId>,
    ) -> Option<Closing> {
        let mut open = self.lock();
        let key = open
            .lanes
            .iter()
            .find(|(_, l)| all || l.waiting.is_empty() || l.deadline <= now)
            .map(|(key, _)| *key)?;
        let lane = open.lanes.remove(&key).expect("found just now");
        if !all {
            self.learn(&lane, now);
        }
        for id in &lane.waiting {
            open.member.remove(id);
        }
        let waiting: Vec<JobId> = lane.waiting.into_iter().collect();
        let unstarted = take_back(&waiting);
        Some(Closing {
            lane: lane.lane,
            owner: lane.owner,
            outcomes: lane.outcomes,
            unfinished: waiting
                .into_iter()
                .filter(|id| !unstarted.contains(id))
                .collect(),
            unstarted,
        })
    }

    /// When the first open lane must end, if any is open.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.lock().lanes.values().map(|l| l.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane() -> Lane {
        Lane(Box::new(()))
    }

    #[test]
    fn a_lane_that_takes_a_held_job_leaves_it_to_the_lane_that_holds_it() {
        let lanes = Lanes::default();
        let owner: Arc<str> = "w".into();
        assert_eq!(lanes.open(lane(), owner.clone(), &[1, 2], Vec::new), 2);
        // Job 2's row came free (the first lane's connection died) and the second took it.
        assert_eq!(lanes.open(lane(), owner, &[2, 3], || vec![2]), 1);
        assert!(
            lanes.route(Outcome::Complete(2)).is_none(),
            "kept for the first lane"
        );
        assert!(lanes.route(Outcome::Complete(3)).is_none());
        let closing: Vec<Closing> =
            std::iter::from_fn(|| lanes.closing(Instant::now(), true, |_| HashSet::new()))
                .collect();
        let mut done: Vec<(Vec<JobId>, Vec<JobId>)> = closing
            .iter()
            .map(|c| {
                let mut finished: Vec<JobId> = c.outcomes.iter().map(Outcome::id).collect();
                finished.sort_unstable();
                let mut unfinished = c.unfinished.clone();
                unfinished.sort_unstable();
                (finished, unfinished)
            })
            .collect();
        done.sort();
        assert_eq!(done, vec![(vec![2], vec![1]), (vec![3], vec![])]);
    }

    #[test]
    fn lanes_that_ran_out_together_keep_the_smallest_bound() {
        let lanes = Lanes::default();
        let owner: Arc<str> = "w".into();
        let big: Vec<JobId> = (0..400).collect();
        let small: Vec<JobId> = (400..500).collect();
        lanes.open(lane(), owner.clone(), &big, Vec::new);
        lanes.open(lane(), owner, &small, Vec::new);
        let later = Instant::now() + WINDOW * 2;
        assert_eq!(
            std::iter::from_fn(|| lanes.closing(later, false, |_| HashSet::new())).count(),
            2
        );
        assert_eq!(
            lanes.most(),
            Some(50),
            "half the smaller lane, whichever learned last"
        );
    }
}
