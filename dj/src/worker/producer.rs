//! The producer: claims ready jobs in batches (up to the free capacity: `concurrency +` the
//! read-ahead [`super::pace`] allows, minus jobs in flight) into the slot table, and when nothing is ready waits for
//! a NOTIFY or `sleep_delay`. It only claims; the runtime starts and stops everything else.

use std::time::{Duration, Instant};

use super::{Report, Shared};
use crate::error::Result;
use crate::store::{ClaimParams, JobFilter};

/// How often a long busy stretch logs its `N jobs processed` line.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Claims until the worker is stopped, or (with `max`, or `exit_on_complete`) until no job is
/// ready or `max` jobs were claimed and finished.
pub(super) fn run(shared: &Shared, max: Option<u64>) {
    let config = &shared.config;
    let exit_when_idle = config.exit_on_complete || max.is_some();
    let concurrency = config.concurrency.max(1);
    let mut claimed_total: u64 = 0;
    let mut failures: u32 = 0;
    let mut reconcile = false;
    let mut burst = Burst::new(shared);
    // Told once per stretch without work.
    let mut idle = false;

    while !shared.stop.is_set() {
        let remaining = max.map(|m| m.saturating_sub(claimed_total));
        let in_flight = shared.slots.in_flight();
        let capacity = concurrency + shared.pace.read_ahead(concurrency, config.read_ahead);
        if remaining == Some(0) {
            if in_flight == 0 {
                break;
            }
            shared
                .slots
                .wait_in_flight_below(1, Duration::from_millis(200));
            continue;
        }
        // Refill in batches: while claimed jobs are still waiting for an executor, let half
        // the capacity free up before the next round trip.
        if in_flight >= capacity || (in_flight > concurrency && capacity - in_flight < capacity / 2)
        {
            shared
                .slots
                .wait_in_flight_below(in_flight, Duration::from_secs(1));
            continue;
        }
        let mut limit = capacity - in_flight;
        if let Some(remaining) = remaining {
            limit = limit.min(usize::try_from(remaining).unwrap_or(usize::MAX));
        }
        if reconcile {
            match release_lost_claims(shared) {
                Ok(()) => reconcile = false,
                Err(e) => {
                    shared.say_error(format_args!(
                        "Error while checking this worker's locks: {e}"
                    ));
                    shared.stop.sleep(Duration::from_millis(500));
                    continue;
                }
            }
        }
        let owner = shared.name();
        let claimed = shared.db.store().job_claim(&ClaimParams {
            worker: &owner,
            queues: &config.queues,
            min_priority: config.min_priority,
            max_priority: config.max_priority,
            limit,
        });
        match claimed {
            Err(e) => {
                // The claim may have committed with its answer lost: check our locks first.
                reconcile = true;
                failures += 1;
                let wait = Duration::from_millis(100 * 2u64.pow(failures.min(7)))
                    .min(Duration::from_secs(10));
                shared.say_error(format_args!(
                    "Error while reserving job: {e} (retrying in {:.1}s)",
                    wait.as_secs_f64()
                ));
                shared.stop.sleep(wait);
            }
            Ok(jobs) if jobs.is_empty() => {
                failures = 0;
                if in_flight > 0 {
                    if exit_when_idle {
                        shared
                            .slots
                            .wait_in_flight_below(in_flight, config.sleep_delay);
                    } else {
                        shared
                            .db
                            .store()
                            .wait_for_jobs(config.sleep_delay, &shared.stop);
                    }
                    continue;
                }
                // A job leaves the in-flight count (counted) before its executor logs its
                // outcome and hands it to the completer: once every outcome is written, the
                // burst's line follows the jobs' own lines.
                shared
                    .slots
                    .wait_written(Instant::now() + config.sleep_delay);
                burst.end(shared);
                if !idle {
                    idle = true;
                    shared.emit(|| super::Event::Idle);
                }
                if exit_when_idle {
                    shared.say(format_args!("No more jobs available. Exiting"));
                    break;
                }
                shared
                    .db
                    .store()
                    .wait_for_jobs(config.sleep_delay, &shared.stop);
            }
            Ok(jobs) => {
                failures = 0;
                idle = false;
                burst.start();
                claimed_total += jobs.len() as u64;
                let count = jobs.len();
                shared.emit(|| super::Event::Claimed { count });
                shared.slots.add_claimed(&owner, jobs);
                burst.maybe_report(shared);
            }
        }
    }
    burst.end(shared);
}

/// After a failed claim: rows locked under this worker's name that it never received (the
/// claim committed but its answer was lost) are released, without counting an attempt.
fn release_lost_claims(shared: &Shared) -> Result<()> {
    let store = shared.db.store();
    let owner = shared.name();
    let locked = store.job_list(&JobFilter {
        locked_by: Some(owner.to_string()),
        ..JobFilter::default()
    })?;
    let held = shared.slots.held(&owner);
    let lost: Vec<i64> = locked
        .iter()
        .map(|r| r.id)
        .filter(|id| !held.contains(id))
        .collect();
    if !lost.is_empty() {
        store.job_unlock(&owner, &lost)?;
        shared.say(format_args!(
            "Released {} job(s) whose claim was lost to a connection error: {lost:?}",
            lost.len()
        ));
    }
    Ok(())
}

/// A stretch of continuous work, for delayed_job's `N jobs processed at X j/s, F failed`.
struct Burst {
    started: Option<Instant>,
    last_report: Instant,
    base: Report,
}

impl Burst {
    fn new(shared: &Shared) -> Self {
        Burst {
            started: None,
            last_report: Instant::now(),
            base: shared.report(),
        }
    }
    fn start(&mut self) {
        if self.started.is_none() {
            self.started = Some(Instant::now());
            self.last_report = Instant::now();
        }
    }
    fn maybe_report(&mut self, shared: &Shared) {
        if self.last_report.elapsed() >= REPORT_EVERY {
            self.report(shared);
            self.started = Some(Instant::now());
        }
    }
    fn end(&mut self, shared: &Shared) {
        if self.started.is_some() {
            self.report(shared);
            self.started = None;
        }
    }
    fn report(&mut self, shared: &Shared) {
        let Some(started) = self.started else {
            return;
        };
        let now = shared.report();
        let succeeded = now.succeeded - self.base.succeeded;
        let failed = now.failed - self.base.failed;
        let count = succeeded + failed;
        self.base = now;
        self.last_report = Instant::now();
        if count == 0 {
            return;
        }
        let rate = count as f64 / started.elapsed().as_secs_f64().max(1e-9);
        shared.say(format_args!(
            "{count} jobs processed at {rate:.4} j/s, {failed} failed"
        ));
    }
}
