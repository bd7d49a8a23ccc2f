//! How much a worker reads ahead: as many jobs as its executors will start within a short
//! horizon at the pace jobs have been finishing, capped by `read_ahead`. Short jobs are then
//! claimed in large batches with no tuning, while a worker of long jobs claims only what its
//! free executors can start, leaving the rest for other workers. Until a job has finished,
//! the pace is unknown and the worker reads nothing ahead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// "Soon": claimed jobs should start within this long.
const HORIZON: Duration = Duration::from_millis(100);

/// A job's share of the worker's own cost (its claim, its outcome write) beside its runtime,
/// so that no-op jobs do not look infinitely fast.
const OVERHEAD: Duration = Duration::from_micros(20);

/// The recent runtime of one job (an exponentially weighted mean of attempts).
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// Nanoseconds; 0 until the first job finished.
    per_job: AtomicU64,
}

impl Pace {
    /// One attempt ran this long.
    pub(super) fn observe(&self, runtime: Duration) {
        let sample = u64::try_from((runtime + OVERHEAD).as_nanos()).unwrap_or(u64::MAX);
        // A lost race between two updates loses one sample: the mean stays a mean.
        let old = self.per_job.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 4 + sample / 4
        };
        self.per_job.store(new.max(1), Ordering::Relaxed);
    }

    /// Jobs to hold beyond the running ones: what `concurrency` executors start within the
    /// horizon at the current pace, at most `cap`.
    pub(super) fn read_ahead(&self, concurrency: usize, cap: usize) -> usize {
        let per_job = self.per_job.load(Ordering::Relaxed);
        if per_job == 0 {
            return 0;
        }
        let soon = HORIZON.as_nanos() as u64 * concurrency as u64 / per_job;
        usize::try_from(soon).unwrap_or(usize::MAX).min(cap)
    }

    /// How many jobs `concurrency` executors finish within `within` at the current pace (0
    /// while the pace is unknown).
    pub(super) fn jobs_within(&self, concurrency: usize, within: Duration) -> usize {
        let per_job = self.per_job.load(Ordering::Relaxed);
        if per_job == 0 {
            return 0;
        }
        let jobs = within.as_nanos() * concurrency as u128 / u128::from(per_job);
        usize::try_from(jobs).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::Pace;
    use std::time::Duration;

    #[test]
    fn short_jobs_read_far_ahead_long_ones_not_at_all() {
        let pace = Pace::default();
        assert_eq!(pace.read_ahead(4, 1000), 0, "nothing is known yet");
        for _ in 0..20 {
            pace.observe(Duration::from_micros(5));
        }
        assert_eq!(pace.read_ahead(4, 1000), 1000, "no-op jobs: the cap");
        assert_eq!(pace.read_ahead(1, 50), 50);
        for _ in 0..40 {
            pace.observe(Duration::from_secs(1));
        }
        assert_eq!(
            pace.read_ahead(4, 1000),
            0,
            "1 s jobs: only what starts now"
        );
        for _ in 0..40 {
            pace.observe(Duration::from_millis(10));
        }
        // 10.02 ms each with the overhead: 2 executors start 19 of them in 100 ms.
        assert_eq!(pace.read_ahead(2, 1000), 19);
        // And 9 of them within 50 ms (a lane's share of its window).
        assert_eq!(pace.jobs_within(2, Duration::from_millis(50)), 9);
        assert_eq!(Pace::default().jobs_within(1, Duration::from_secs(1)), 0);
    }
}
