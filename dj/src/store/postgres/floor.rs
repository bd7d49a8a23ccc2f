//! Where the plain claims start their index walks. While a worker works through a backlog,
//! every ready row ahead of the smallest `(priority, run_at)` its last claim took was claimed
//! (by it or by others), so the next claim starts there ([`CLAIM_FROM`], per queue
//! [`CLAIM_QUEUES_FROM`]) instead of at the top. Under a held MVCC horizon that is the
//! difference between reading a batch's worth of index entries and reading the dead entries
//! of every job run since the horizon began. A claim that took fewer rows than it asked for
//! (no backlog) forgets the floors it used, unless walks from the top have become slow (at
//! least [`SLOW_TOP`]: a horizon is held): then a worker that keeps up with a steady stream
//! keeps its floor too, or every pickup would read the dead entries of every job run since the
//! horizon began. Each walk goes from the top again at least every [`FLOOR_RESCAN`], which
//! finds rows made ready ahead of a floor since it was set.
//! When walks from the top are slow (the dead entries a held horizon keeps), they are spaced
//! further apart: at least [`RESCAN_SHARE`] times as long as the last one took, so that they
//! cost at most a tenth of the claim's time.
//!
//! [`CLAIM_FROM`]: super::sql::claim::CLAIM_FROM
//! [`CLAIM_QUEUES_FROM`]: super::sql::claim::CLAIM_QUEUES_FROM

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::model::JobRow;

/// A claim's position in claim order: `(priority, run_at)`.
pub(super) type Key = (i32, SystemTime);

/// How long a walk may start from a floor before it starts from the top again. A row made
/// ready ahead of a floor (a more urgent job enqueued mid-backlog, a job run now, retried or
/// released with an earlier `run_at`) waits at most this long while a backlog is worked.
pub(super) const FLOOR_RESCAN: Duration = Duration::from_secs(1);

/// A claim from the top that took this long (round trip included; a few milliseconds on a
/// healthy table) is slow: its walk read many dead entries.
pub(super) const SLOW_TOP: Duration = Duration::from_millis(10);

/// Walks from the top are at least this many times their own duration apart.
const RESCAN_SHARE: u32 = 10;

/// The key before every row: a queue without a floor walks from its top. (Year 1: no job
/// runs before it.)
pub(super) fn top() -> Key {
    (
        i32::MIN,
        SystemTime::UNIX_EPOCH - Duration::from_secs(62_135_596_800),
    )
}

/// One walk's floor.
#[derive(Debug, Default, Clone, Copy)]
struct Floor {
    /// The smallest key the last full claim took on this walk.
    key: Option<Key>,
    /// When this walk last started from the top, and how long that claim took.
    top_at: Option<Instant>,
    top_took: Duration,
}

impl Floor {
    fn start(&self) -> Option<Key> {
        let rescan = FLOOR_RESCAN.max(self.top_took * RESCAN_SHARE);
        match (self.key, self.top_at) {
            (Some(key), Some(at)) if at.elapsed() < rescan => Some(key),
            _ => None,
        }
    }

    /// After a claim that walked from `from` (none: the top) and took `took`, took rows whose
    /// smallest key on this walk is `taken`, and took all it asked for (`full`) or not.
    fn after(&mut self, from: Option<Key>, took: Duration, taken: Option<Key>, full: bool) {
        if from.is_none() {
            self.top_at = Some(Instant::now());
            self.top_took = took;
        }
        if !full && self.top_took < SLOW_TOP {
            self.key = None;
        } else if taken.is_some() {
            self.key = taken;
        }
        // None of this queue's rows taken: the floor it had still holds (a full claim took
        // other queues' rows, all ahead in claim order; a short one found nothing new).
    }
}

/// The floors of a store's claims: the every-queue walk, and one walk per listed queue.
#[derive(Debug, Default)]
pub(super) struct ClaimFloor {
    every: Mutex<Floor>,
    listed: Mutex<HashMap<String, Floor>>,
}

impl ClaimFloor {
    /// Where the every-queue claim starts: a floor, or none (the top).
    pub(super) fn every(&self) -> Option<Key> {
        lock(&self.every).start()
    }

    /// What an every-queue claim from `from` took (in `took`), of the `limit` it asked for.
    pub(super) fn every_claimed(
        &self,
        from: Option<Key>,
        took: Duration,
        rows: &[JobRow],
        limit: i64,
    ) {
        let taken = rows.iter().map(|r| (r.priority, r.run_at)).min();
        lock(&self.every).after(from, took, taken, rows.len() as i64 >= limit);
    }

    /// A row at `key` that a claim took was let go untouched (a fast lane's job that had not
    /// started): the every-queue floor, if above it, comes down to it.
    pub(super) fn every_released(&self, key: Key) {
        let mut floor = lock(&self.every);
        if floor.key.is_some_and(|at| key < at) {
            floor.key = Some(key);
        }
    }

    /// Where each of `queues` (no name twice) starts.
    pub(super) fn listed(&self, queues: &[String]) -> Vec<Option<Key>> {
        let floors = lock(&self.listed);
        queues
            .iter()
            .map(|q| floors.get(q).and_then(Floor::start))
            .collect()
    }

    /// What a claim of listed `queues` from `from` (in their order) took (in `took`), of its
    /// `limit`.
    pub(super) fn listed_claimed(
        &self,
        queues: &[String],
        from: &[Option<Key>],
        took: Duration,
        rows: &[JobRow],
        limit: i64,
    ) {
        let full = rows.len() as i64 >= limit;
        let mut floors = lock(&self.listed);
        for (queue, &from) in queues.iter().zip(from) {
            let taken = rows
                .iter()
                .filter(|r| r.queue.as_deref() == Some(queue.as_str()))
                .map(|r| (r.priority, r.run_at))
                .min();
            floors
                .entry(queue.clone())
                .or_default()
                .after(from, took, taken, full);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(queue: &str, priority: i32, secs: u64) -> JobRow {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        JobRow {
            priority,
            run_at: at,
            locked_at: Some(at),
            queue: Some(queue.to_owned()),
            created_at: at,
            updated_at: at,
            ..JobRow::claimed_for_test(1)
        }
    }

    #[test]
    fn a_full_claim_sets_the_floor_and_a_short_one_forgets_it() {
        let floor = ClaimFloor::default();
        assert_eq!(floor.every(), None);
        let took = Duration::from_millis(1);
        floor.every_claimed(None, took, &[row("a", 1, 20), row("b", 0, 30)], 2);
        let key = (0, SystemTime::UNIX_EPOCH + Duration::from_secs(30));
        assert_eq!(floor.every(), Some(key));
        floor.every_claimed(Some(key), took, &[row("a", 2, 5)], 2);
        assert_eq!(floor.every(), None);
    }

    #[test]
    fn a_short_claim_keeps_the_floor_once_walks_from_the_top_are_slow() {
        let floor = ClaimFloor::default();
        let slow = SLOW_TOP * 2;
        floor.every_claimed(None, slow, &[row("a", 1, 20)], 5);
        let key = (1, SystemTime::UNIX_EPOCH + Duration::from_secs(20));
        assert_eq!(floor.every(), Some(key), "a slow top walk: the floor stays");
        floor.every_claimed(Some(key), Duration::from_millis(1), &[], 5);
        assert_eq!(floor.every(), Some(key), "nothing new: the floor it had");
        floor.every_claimed(Some(key), Duration::from_millis(1), &[row("b", 1, 25)], 5);
        let later = (1, SystemTime::UNIX_EPOCH + Duration::from_secs(25));
        assert_eq!(floor.every(), Some(later));
        floor.every_claimed(None, Duration::from_millis(1), &[row("c", 1, 30)], 5);
        assert_eq!(floor.every(), None, "a fast top walk again: no floor");
    }

    #[test]
    fn the_walk_from_the_top_is_due_a_second_later_or_ten_times_its_length() {
        let mut floor = Floor::default();
        let key = (0, SystemTime::UNIX_EPOCH);
        floor.after(None, Duration::from_millis(5), Some(key), true);
        assert_eq!(floor.start(), Some(key));
        floor.top_at = Some(Instant::now() - FLOOR_RESCAN);
        assert_eq!(floor.start(), None, "due after a second");
        floor.top_took = Duration::from_millis(300);
        assert_eq!(floor.start(), Some(key), "a 300 ms walk is due after 3 s");
    }

    #[test]
    fn each_listed_queue_has_its_own_floor() {
        let floor = ClaimFloor::default();
        let queues = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let rows = [row("a", 3, 1), row("b", 1, 9)];
        floor.listed_claimed(&queues, &[None, None, None], Duration::ZERO, &rows, 2);
        let starts = floor.listed(&queues);
        assert_eq!(
            starts[0],
            Some((3, SystemTime::UNIX_EPOCH + Duration::from_secs(1)))
        );
        assert_eq!(
            starts[1],
            Some((1, SystemTime::UNIX_EPOCH + Duration::from_secs(9)))
        );
        assert_eq!(
            starts[2], None,
            "no row of c taken, and c never had a floor"
        );
    }
}
