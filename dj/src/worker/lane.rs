//! The worker's fast lanes (PostgreSQL; the store's `lane` says what a lane is in the
//! database). A batch of short jobs is claimed by locking its rows in a transaction that stays
//! open while they run; their outcomes gather here, and the completer ends the lane in that
//! transaction once every job has one, or once the lane has been open for [`WINDOW`]: then
//! the jobs still running (or still waiting for an executor) become ordinary claims, written
//! in the same transaction, and go on as any other. A lane's failed jobs are made ordinary
//! claims too, and their outcome is written the ordinary way after it.
//!
//! The producer takes a lane only when the jobs it claims should all finish within half the
//! window at the pace jobs have been finishing, so long jobs never hold a transaction open.

use std::collections::{HashMap, HashSet};
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
}

#[derive(Default)]
struct Open {
    next: u64,
    lanes: HashMap<u64, OpenLane>,
    member: HashMap<JobId, u64>,
}

struct OpenLane {
    lane: Lane,
    owner: Arc<str>,
    /// Jobs without an outcome yet.
    waiting: HashSet<JobId>,
    outcomes: Vec<Outcome>,
    deadline: Instant,
}

/// A lane to end now.
pub(super) struct Closing {
    pub lane: Lane,
    pub owner: Arc<str>,
    pub outcomes: Vec<Outcome>,
    /// Its jobs without an outcome: running, or not started.
    pub unfinished: Vec<JobId>,
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
    /// the table does not hold yet (it would take them for lost, and free their rows).
    pub(super) fn open(
        &self,
        lane: Lane,
        owner: Arc<str>,
        ids: &[JobId],
        hand_over: impl FnOnce(),
    ) {
        {
            let mut open = self.lock();
            let key = open.next;
            open.next += 1;
            for id in ids {
                open.member.insert(*id, key);
            }
            open.lanes.insert(
                key,
                OpenLane {
                    lane,
                    owner,
                    waiting: ids.iter().copied().collect(),
                    outcomes: Vec::with_capacity(ids.len()),
                    deadline: Instant::now() + WINDOW,
                },
            );
            hand_over();
        }
        if let Some(wake) = &*self.waker.lock().unwrap_or_else(|e| e.into_inner()) {
            wake();
        }
    }

    /// How many lanes are open.
    pub(super) fn len(&self) -> usize {
        self.lock().lanes.len()
    }

    /// Whether this job is in an open lane (its row is not yet an ordinary claim).
    pub(super) fn contains(&self, id: JobId) -> bool {
        self.lock().member.contains_key(&id)
    }

    /// Keeps the outcome of a job in an open lane for the lane's end; gives back any other.
    pub(super) fn route(&self, outcome: Outcome) -> Option<Outcome> {
        let mut open = self.lock();
        let id = outcome.id();
        let Some(key) = open.member.remove(&id) else {
            return Some(outcome);
        };
        let lane = open.lanes.get_mut(&key).expect("a member's lane is open");
        lane.waiting.remove(&id);
        lane.outcomes.push(outcome);
        None
    }

    /// The lanes to end: those with every outcome in, those open for the whole window, or
    /// (`all`, when the worker stops) every one.
    pub(super) fn closing(&self, now: Instant, all: bool) -> Vec<Closing> {
        let mut open = self.lock();
        let due: Vec<u64> = open
            .lanes
            .iter()
            .filter(|(_, l)| all || l.waiting.is_empty() || l.deadline <= now)
            .map(|(key, _)| *key)
            .collect();
        let mut closing = Vec::with_capacity(due.len());
        for key in due {
            let lane = open.lanes.remove(&key).expect("listed just now");
            for id in &lane.waiting {
                open.member.remove(id);
            }
            closing.push(Closing {
                lane: lane.lane,
                owner: lane.owner,
                outcomes: lane.outcomes,
                unfinished: lane.waiting.into_iter().collect(),
            });
        }
        closing
    }

    /// When the first open lane must end, if any is open.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.lock().lanes.values().map(|l| l.deadline).min()
    }
}
