//! Progress reports (`Context::progress`), coalesced: a report only replaces the job's
//! latest in memory, on the board its worker keeps; the worker's flusher
//! (`worker::progress`) takes what changed off the board at most once a second and writes it
//! in one statement. A job reporting ten thousand times a second costs one row write a second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::model::{kept_fraction, kept_message, JobId};

/// The reports not yet written, and the jobs that ended since the last pass.
#[derive(Debug, Default)]
pub(crate) struct ProgressBoard {
    inner: Mutex<Board>,
}

#[derive(Debug, Default)]
struct Board {
    /// The latest report of each job that reported since the last pass.
    unwritten: BTreeMap<JobId, (f64, String)>,
    /// The jobs that have reported, while they run.
    reported: BTreeSet<JobId>,
    /// Jobs that reported and ended since the last pass.
    ended: Vec<JobId>,
}

impl ProgressBoard {
    /// Job `id` says how far it is.
    pub(crate) fn report(&self, id: JobId, fraction: f64, message: &str) {
        let mut board = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        board.reported.insert(id);
        let report = (kept_fraction(fraction), kept_message(message));
        board.unwritten.insert(id, report);
    }

    /// Job `id` ended: its progress goes at the next pass, if it had any.
    pub(crate) fn ended(&self, id: JobId) {
        let mut board = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if board.reported.remove(&id) {
            board.unwritten.remove(&id);
            board.ended.push(id);
        }
    }

    /// What a pass writes, taken off the board.
    pub(crate) fn take(&self) -> (Vec<(JobId, f64, String)>, Vec<JobId>) {
        let mut board = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let unwritten = std::mem::take(&mut board.unwritten);
        let reports = unwritten
            .into_iter()
            .map(|(id, (f, m))| (id, f, m))
            .collect();
        (reports, std::mem::take(&mut board.ended))
    }

    /// Puts back what a failed pass did not write (newer reports win).
    pub(crate) fn restore(&self, reports: Vec<(JobId, f64, String)>, ended: Vec<JobId>) {
        let mut board = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (id, fraction, message) in reports {
            if board.reported.contains(&id) {
                board.unwritten.entry(id).or_insert((fraction, message));
            }
        }
        board.ended.extend(ended);
    }
}

/// A job's handle on the board, in its `Context`.
#[derive(Debug, Clone)]
pub(crate) struct Reporter {
    pub(crate) board: Arc<ProgressBoard>,
    pub(crate) id: JobId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_coalesce_to_the_latest_per_job() {
        let board = ProgressBoard::default();
        for i in 0..10_000 {
            board.report(7, f64::from(i) / 10_000.0, &format!("step {i}"));
        }
        board.report(8, 0.5, "half");
        let (reports, ended) = board.take();
        assert_eq!(
            reports,
            [
                (7, 0.9999, "step 9999".to_owned()),
                (8, 0.5, "half".to_owned())
            ]
        );
        assert!(ended.is_empty());
        board.ended(7);
        board.ended(9); // never reported: nothing to clear
        assert_eq!(board.take(), (vec![], vec![7]));
    }
}
