//! The producer: claims ready jobs in batches (up to the free capacity: `concurrency +` the
//! read-ahead [`super::pace`] allows, minus jobs in flight) into the slot table, and when nothing is ready waits for
//! a NOTIFY or `sleep_delay`. It only claims; the runtime starts and stops everything else.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{lane, Report, Shared};
use crate::error::{Error, Result};
use crate::model::{JobFilter, JobId, JobRow};
use crate::store::{ClaimParams, Lane};

/// How often a long busy stretch logs its `N jobs processed` line.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Claims until the worker is stopped, or (with `max`, or `exit_on_complete`) until no job is
/// ready or `max` jobs were claimed and finished.
pub(super) fn run(shared: &Shared, max: Option<u64>) {
    let mut producer = Producer::new(shared, max);
    while !shared.stop.is_set() {
        if producer.round().is_break() {
            break;
        }
    }
    producer.burst.end(shared);
}

/// The producer's state between rounds.
struct Producer<'a> {
    shared: &'a Shared,
    /// Jobs to claim in all (`work_off`), if limited.
    max: Option<u64>,
    exit_when_idle: bool,
    concurrency: usize,
    claimed_total: u64,
    /// Failed claims in a row, for the backoff.
    failures: u32,
    /// Whether a failed claim may have taken jobs this worker never received.
    reconcile: bool,
    burst: Burst,
    /// Told once per stretch without work.
    idle: bool,
    /// Executors busy with a job past half a lane's window, and when they were counted.
    busy: (usize, Option<Instant>),
}

/// Whether a claim is a fast lane.
enum LaneFit {
    /// A lane of up to this many jobs.
    Claim(usize),
    /// Not yet: a lane opens once jobs in flight have finished.
    Wait,
    /// The ordinary claim.
    Ordinary,
}

/// What a round does before claiming, given the jobs in flight.
enum Room {
    /// `max` jobs were claimed and have finished.
    Finished,
    /// Full (or `max` claimed): wait until fewer than `below` jobs are in flight, at most
    /// `at_most`.
    Wait { below: usize, at_most: Duration },
    /// Claim up to this many jobs.
    Claim(usize),
}

impl<'a> Producer<'a> {
    fn new(shared: &'a Shared, max: Option<u64>) -> Self {
        let config = &shared.config;
        Producer {
            shared,
            max,
            exit_when_idle: config.exit_on_complete || max.is_some(),
            concurrency: config.concurrency.max(1),
            claimed_total: 0,
            failures: 0,
            reconcile: false,
            burst: Burst::new(shared),
            idle: false,
            busy: (0, None),
        }
    }

    /// One round: wait for room, or claim what fits and hand it to the slot table.
    fn round(&mut self) -> ControlFlow<()> {
        let shared = self.shared;
        let in_flight = shared.slots.in_flight();
        let limit = match self.room(in_flight) {
            Room::Finished => return ControlFlow::Break(()),
            Room::Wait { below, at_most } => {
                shared.slots.wait_in_flight_below(below, at_most);
                return ControlFlow::Continue(());
            }
            Room::Claim(limit) => limit,
        };
        if self.reconcile && !self.reconciled() {
            return ControlFlow::Continue(());
        }
        let owner = shared.name();
        let config = &shared.config;
        let params = ClaimParams {
            worker: &owner,
            queues: &config.queues,
            min_priority: config.min_priority,
            max_priority: config.max_priority,
            limit,
            lane_skips: &shared.lane_skips,
        };
        let store = shared.db.store();
        let writes = shared.slots.writes();
        let fit = self.lane_fit(in_flight, limit);
        let claimed = match fit {
            LaneFit::Claim(jobs) => {
                let lane = store.lane_claim(&ClaimParams {
                    limit: jobs,
                    ..params
                });
                match lane {
                    Ok(Some(claim)) => Ok((claim.rows, Some(claim.lane))),
                    Ok(None) => store.job_claim(&params).map(|jobs| (jobs, None)),
                    Err(e) => Err(e),
                }
            }
            // Short jobs, and no room in a lane yet: one opens as soon as jobs finish. An
            // ordinary claim now would cost two writes per job, and its outcomes wait for
            // the open lanes to end (see the completer's `end_lanes`).
            LaneFit::Wait => {
                shared
                    .slots
                    .wait_in_flight_below(in_flight, lane::WINDOW / 10);
                return ControlFlow::Continue(());
            }
            LaneFit::Ordinary => store.job_claim(&params).map(|jobs| (jobs, None)),
        };
        let handed_over = match claimed {
            Ok((jobs, lane)) if !jobs.is_empty() => {
                self.claimed(&owner, jobs, lane);
                None
            }
            other => Some(other),
        };
        // A lane claim that opened no lane (nothing, or the ordinary claim instead) ends
        // once its rows are in the slot table (see the completer's `abandon`).
        if matches!(fit, LaneFit::Claim(_)) {
            shared.lanes.claim_ended();
        }
        match handed_over {
            Some(Err(e)) => self.claim_failed(&e),
            Some(Ok(_)) => return self.nothing_ready(in_flight, writes),
            None => {}
        }
        ControlFlow::Continue(())
    }

    /// Whether the next claim may be a fast lane, and of how many jobs: those the executors
    /// finish within half the lane's window at the pace jobs have been finishing, less those
    /// already in flight, and no more than `limit` or the lanes' bound (see `lane`). Jobs too
    /// long for every executor to finish one in that time take the ordinary claim. An
    /// executor whose job has run half a window already is left out, whatever the pace says
    /// (short jobs may have come before it): with none left, the claim is ordinary, or a
    /// lane's jobs would wait for the window's end unstarted, to be let go. A `Claim` has
    /// begun a lane claim (`Lanes::start_claim`): the round ends it.
    fn lane_fit(&mut self, in_flight: usize, limit: usize) -> LaneFit {
        let shared = self.shared;
        if !shared.config.fast_lane || !shared.config.queues.is_empty() {
            return LaneFit::Ordinary;
        }
        let busy = self.busy_executors();
        let (concurrency, in_flight) = (
            self.concurrency.saturating_sub(busy),
            in_flight.saturating_sub(busy),
        );
        let fit = shared.pace.jobs_within(concurrency, lane::WINDOW / 2);
        if concurrency == 0 || fit < concurrency {
            return LaneFit::Ordinary;
        }
        let most = shared.lanes.most().unwrap_or(usize::MAX);
        let room = fit.saturating_sub(in_flight).min(limit).min(most);
        // A small lane costs the round trips of a large one: wait for half the room unless an
        // executor has nothing to do.
        let worth = room > 0 && (room >= fit.min(most) / 2 || in_flight < concurrency);
        if worth && shared.lanes.start_claim() {
            LaneFit::Claim(room)
        } else {
            LaneFit::Wait
        }
    }

    /// Executors busy with a job that has run half a lane's window, counted at most every
    /// tenth of a window: counting looks at every job held, and rounds come as often as jobs
    /// finish.
    fn busy_executors(&mut self) -> usize {
        let (busy, counted) = &mut self.busy;
        if counted.is_none_or(|at| at.elapsed() >= lane::WINDOW / 10) {
            *busy = self.shared.slots.running_for(lane::WINDOW / 2);
            *counted = Some(Instant::now());
        }
        *busy
    }

    /// How many jobs fit: the capacity (`concurrency` plus the read-ahead) less those in
    /// flight, and no more than `max` leaves.
    fn room(&self, in_flight: usize) -> Room {
        let (shared, concurrency) = (self.shared, self.concurrency);
        // Jobs a lane let go unstarted are claimed again to run.
        let claimed = self.claimed_total.saturating_sub(shared.lanes.given_back());
        let remaining = self.max.map(|m| m.saturating_sub(claimed));
        let capacity = concurrency
            + shared
                .pace
                .read_ahead(concurrency, shared.config.read_ahead);
        if remaining == Some(0) {
            if in_flight == 0 {
                return Room::Finished;
            }
            return Room::Wait {
                below: 1,
                at_most: Duration::from_millis(200),
            };
        }
        // Refill in batches: while claimed jobs are still waiting for an executor, let half
        // the capacity free up before the next round trip.
        if in_flight >= capacity || (in_flight > concurrency && capacity - in_flight < capacity / 2)
        {
            return Room::Wait {
                below: in_flight,
                at_most: Duration::from_secs(1),
            };
        }
        let mut limit = capacity - in_flight;
        if let Some(remaining) = remaining {
            limit = limit.min(usize::try_from(remaining).unwrap_or(usize::MAX));
        }
        Room::Claim(limit)
    }

    /// After a failed claim, releases what it may have taken unseen; false (after a pause)
    /// while that fails.
    fn reconciled(&mut self) -> bool {
        match release_lost_claims(self.shared) {
            Ok(()) => {
                self.reconcile = false;
                true
            }
            Err(e) => {
                self.shared.say_error(format_args!(
                    "Error while checking this worker's locks: {e}"
                ));
                self.shared.stop.sleep(Duration::from_millis(500));
                false
            }
        }
    }

    /// A claim failed: back off, and check this worker's locks before the next one.
    fn claim_failed(&mut self, e: &Error) {
        // The claim may have committed with its answer lost: check our locks first.
        self.reconcile = true;
        self.failures += 1;
        let wait = Duration::from_millis(100 * 2u64.pow(self.failures.min(7)))
            .min(Duration::from_secs(10));
        self.shared.say_error(format_args!(
            "Error while reserving job: {e} (retrying in {:.1}s)",
            wait.as_secs_f64()
        ));
        self.shared.stop.sleep(wait);
    }

    /// No job was ready: wait for running ones or for new ones; at the end of a stretch of
    /// work, log it, tell the listener, and stop if the worker exits when idle.
    /// `writes`: [`super::slots::Slots::writes`] before the claim.
    fn nothing_ready(&mut self, in_flight: usize, writes: u64) -> ControlFlow<()> {
        let (shared, config) = (self.shared, &self.shared.config);
        self.failures = 0;
        // A job held back by a rate is ready again when the rate's next start frees up,
        // which no NOTIFY announces.
        let refill = shared.db.store().rate_refill();
        let wait = match refill {
            Some(refill) => refill.max(Duration::from_millis(1)).min(config.sleep_delay),
            None => config.sleep_delay,
        };
        if in_flight > 0 {
            if self.exit_when_idle {
                shared.slots.wait_in_flight_below(in_flight, wait);
            } else {
                shared.db.store().wait_for_jobs(wait, &shared.stop);
            }
            return ControlFlow::Continue(());
        }
        // An outcome not yet written may hold a job back (the next of its sequence or key,
        // whose running count includes the finished row until it is deleted): a worker that
        // exits when idle looks again once it is written, and once more if one was written
        // after the claim began (the claim may have seen the row still there).
        if self.exit_when_idle && shared.slots.writes() != writes {
            return ControlFlow::Continue(());
        }
        if self.exit_when_idle && shared.slots.wait_written(Instant::now()) > 0 {
            shared
                .slots
                .wait_written(Instant::now() + config.sleep_delay);
            return ControlFlow::Continue(());
        }
        // A job leaves the in-flight count (counted) before its executor logs its
        // outcome and hands it to the completer: once every outcome is written, the
        // burst's line follows the jobs' own lines.
        shared
            .slots
            .wait_written(Instant::now() + config.sleep_delay);
        self.burst.end(shared);
        if !self.idle {
            self.idle = true;
            shared.emit(|| super::Event::Idle);
        }
        // Ready jobs held back by a rate are work still to do: a worker that exits when
        // idle waits for them.
        if self.exit_when_idle && refill.is_some() {
            shared.stop.sleep(wait);
            return ControlFlow::Continue(());
        }
        if self.exit_when_idle {
            shared.say(format_args!("No more jobs available. Exiting"));
            return ControlFlow::Break(());
        }
        shared.db.store().wait_for_jobs(wait, &shared.stop);
        ControlFlow::Continue(())
    }

    /// Hands claimed jobs to the slot table.
    fn claimed(&mut self, owner: &Arc<str>, jobs: Vec<JobRow>, lane: Option<Lane>) {
        self.failures = 0;
        self.idle = false;
        self.burst.start();
        let slots = &self.shared.slots;
        // Jobs the table holds already (see `Slots::add_claimed`) are let go, not counted.
        let count = match lane {
            Some(lane) => {
                let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
                self.shared
                    .lanes
                    .open(lane, owner.clone(), &ids, || slots.add_claimed(owner, jobs))
            }
            None => {
                let count = jobs.len();
                let held = slots.add_claimed(owner, jobs);
                if !held.is_empty() {
                    self.let_go(owner, &held);
                }
                count - held.len()
            }
        };
        self.claimed_total += count as u64;
        if count > 0 {
            self.shared.emit(|| super::Event::Claimed { count });
        }
        self.burst.maybe_report(self.shared);
    }

    /// Unlocks rows claimed again while this worker still holds their jobs (see
    /// `Slots::add_claimed`); if that fails, the locks are checked before the next claim.
    fn let_go(&mut self, owner: &str, ids: &[JobId]) {
        if let Err(e) = self.shared.db.store().job_unlock(owner, ids) {
            self.shared.say_error(format_args!(
                "Error while releasing jobs claimed again: {e}"
            ));
            self.reconcile = true;
        }
    }
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
