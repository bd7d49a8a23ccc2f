//! The producer: the worker's main loop. It claims ready jobs in batches (up to the free
//! capacity: `concurrency + read_ahead` minus jobs in flight), hands them to the executors,
//! and when nothing is ready waits for a NOTIFY or `sleep_delay`. It also runs the shutdown:
//! stop claiming, hand back unstarted jobs, wait for running ones up to `shutdown_timeout`,
//! unlock what is still running, and flush the completer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::completer::{self, Outcome};
use super::{executor, job_label, rescuer, Report, Shared, StopFlag, Worker};
use crate::error::Result;
use crate::store::{ClaimParams, JobRow};

/// How often a long busy stretch logs its `N jobs processed` line.
const REPORT_EVERY: Duration = Duration::from_secs(10);

pub(super) fn run(worker: &Worker, max: Option<u64>) -> Result<Report> {
    crate::registry::registry().check()?;
    wait_for_database(worker)?;
    let config = worker.config.clone();
    let shared = Arc::new(Shared {
        db: worker.db.clone(),
        config: config.clone(),
        state: worker.state.clone(),
        stop: worker.stop.clone(),
        name: worker.name.clone(),
        inflight: Mutex::new(0),
        inflight_changed: Condvar::new(),
        running: Mutex::new(HashMap::new()),
        fenced: Mutex::new(HashMap::new()),
        held: Mutex::new(HashSet::new()),
        succeeded: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        interrupted: AtomicU64::new(0),
    });
    shared.say(format_args!("Starting job worker"));
    let name = ActiveName::register(&shared.name);
    rescuer::rescue_at_start(&shared, name.first);

    let (job_tx, job_rx) = mpsc::channel::<JobRow>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (out_tx, out_rx) = mpsc::channel::<Outcome>();
    let completer = completer::spawn(shared.clone(), out_rx);
    let concurrency = config.concurrency.max(1);
    for slot in 0..concurrency {
        executor::spawn(shared.clone(), job_rx.clone(), out_tx.clone(), slot);
    }
    let rescuer_done = StopFlag::new();
    let rescuer = rescuer::spawn(
        shared.clone(),
        job_rx.clone(),
        out_tx.clone(),
        rescuer_done.clone(),
    );

    let exit_when_idle = config.exit_on_complete || max.is_some();
    let capacity = concurrency + config.read_ahead;
    let mut claimed_total: u64 = 0;
    let mut reserve_failures: u32 = 0;
    let mut reconcile = false;
    let mut burst = Burst::new(&shared);

    loop {
        if shared.stop.is_set() {
            break;
        }
        let remaining = max.map(|m| m.saturating_sub(claimed_total));
        let inflight = shared.inflight();
        if remaining == Some(0) {
            if inflight == 0 {
                break;
            }
            shared.wait_inflight_below(1, Duration::from_millis(200));
            continue;
        }
        // Refill in batches: while claimed jobs are still waiting for a slot, let half the
        // capacity free up before the next round trip.
        if inflight >= capacity || (inflight > concurrency && capacity - inflight < capacity / 2) {
            shared.wait_inflight_below(inflight, Duration::from_secs(1));
            continue;
        }
        let mut limit = capacity - inflight;
        if let Some(remaining) = remaining {
            limit = limit.min(usize::try_from(remaining).unwrap_or(usize::MAX));
        }
        if reconcile {
            match release_lost_claims(&shared) {
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
        let claimed = shared.db.store().job_claim(&ClaimParams {
            worker: &shared.name,
            queues: &config.queues,
            min_priority: config.min_priority,
            max_priority: config.max_priority,
            limit,
        });
        match claimed {
            Err(e) => {
                // The claim may have committed with its answer lost: check our locks first.
                reconcile = true;
                reserve_failures += 1;
                let wait = Duration::from_millis(100 * 2u64.pow(reserve_failures.min(7)))
                    .min(Duration::from_secs(10));
                shared.say_error(format_args!(
                    "Error while reserving job: {e} (retrying in {:.1}s)",
                    wait.as_secs_f64()
                ));
                shared.stop.sleep(wait);
            }
            Ok(jobs) if jobs.is_empty() => {
                reserve_failures = 0;
                if inflight > 0 {
                    if exit_when_idle {
                        shared.wait_inflight_below(inflight, config.sleep_delay);
                    } else {
                        shared
                            .db
                            .store()
                            .wait_for_jobs(config.sleep_delay, &shared.stop);
                    }
                    continue;
                }
                burst.end(&shared);
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
                reserve_failures = 0;
                burst.start();
                let n = jobs.len();
                shared
                    .held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(jobs.iter().map(|j| j.id));
                *shared.inflight.lock().unwrap_or_else(|e| e.into_inner()) += n;
                claimed_total += n as u64;
                for job in jobs {
                    job_tx.send(job).expect("executors outlive the producer");
                }
                burst.maybe_report(&shared);
            }
        }
    }

    // Shutdown: no more claims; unstarted jobs go back; running ones get shutdown_timeout.
    drop(job_tx);
    release_unstarted(&shared, &job_rx, &out_tx);
    let wait = if shared.stop.is_set() {
        config.shutdown_timeout
    } else {
        Duration::from_secs(365 * 24 * 3600)
    };
    let deadline = Instant::now() + wait;
    if shared.wait_inflight_below(1, wait) > 0 {
        release_unstarted(&shared, &job_rx, &out_tx);
        interrupt_running(&shared);
    }
    wait_for_fenced(&shared, deadline);
    burst.end(&shared);
    rescuer_done.set();
    let _ = rescuer.join();
    let _ = out_tx.send(Outcome::Shutdown);
    let _ = completer.join();
    Ok(shared.report())
}

/// After a failed claim: rows locked under this worker's name that it never received (the
/// claim committed but its answer was lost) are released, without counting an attempt.
fn release_lost_claims(shared: &Shared) -> Result<()> {
    let store = shared.db.store();
    let locked = store.job_list(&crate::store::JobFilter {
        locked_by: Some(shared.name.clone()),
        ..crate::store::JobFilter::default()
    })?;
    let lost: Vec<i64> = {
        let held = shared.held.lock().unwrap_or_else(|e| e.into_inner());
        locked
            .iter()
            .map(|r| r.id)
            .filter(|id| !held.contains(id))
            .collect()
    };
    if !lost.is_empty() {
        store.job_unlock(&shared.name, &lost)?;
        shared.say(format_args!(
            "Released {} job(s) whose claim was lost to a connection error: {lost:?}",
            lost.len()
        ));
    }
    Ok(())
}

/// Checks the table before the first claim. A missing table is an error naming `migrate`, a
/// database this process cannot write an error naming the file; an unreachable database is
/// waited for, with backoff, until it answers, the worker is stopped, or `database_wait` runs
/// out.
fn wait_for_database(worker: &Worker) -> Result<()> {
    let db = &worker.db;
    db.wait_for(
        worker.config.database_wait,
        &worker.stop,
        |store| store.check_schema(),
        |e, wait| {
            tracing::error!(
                target: "dj",
                "[Worker({})] Error while connecting to {}: {e} (retrying in {:.1}s)",
                worker.name,
                db.url(),
                wait.as_secs_f64()
            )
        },
    )?;
    db.store().check_writable()
}

/// Jobs that overran their max_run_time keep their locks until their code returns; give
/// them until `deadline` to do so, so that their locks are released by this worker.
fn wait_for_fenced(shared: &Shared, deadline: Instant) {
    loop {
        let fenced = shared
            .fenced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        if fenced == 0 {
            return;
        }
        if Instant::now() >= deadline {
            shared.say_error(format_args!(
                "{fenced} job(s) still running past their max_run_time at exit; their locks expire after max_run_time"
            ));
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Claimed jobs no executor has started: unlock them without counting an attempt.
fn release_unstarted(
    shared: &Shared,
    jobs: &Arc<Mutex<Receiver<JobRow>>>,
    outcomes: &mpsc::Sender<Outcome>,
) {
    // An idle executor holds the lock while it waits; it releases unstarted jobs itself.
    let Ok(jobs) = jobs.try_lock() else {
        return;
    };
    while let Ok(row) = jobs.try_recv() {
        let _ = outcomes.send(Outcome::Release(row.id));
        shared.finish_one();
    }
}

/// Jobs still running at the shutdown timeout: unlocked now so another worker can take
/// them, counted as interrupted (not as failed attempts).
fn interrupt_running(shared: &Shared) {
    let running: Vec<(i64, String, Option<String>)> = shared
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter(|r| !r.expired.load(Ordering::SeqCst))
        .map(|r| (r.id, r.name.clone(), r.row.queue.clone()))
        .collect();
    if running.is_empty() {
        return;
    }
    let ids: Vec<i64> = running.iter().map(|r| r.0).collect();
    match shared.db.store().job_unlock(&shared.name, &ids) {
        Ok(_) => {
            for (id, name, queue) in &running {
                shared.say_error(format_args!(
                    "{} INTERRUPTED: still running after the {}s shutdown timeout; unlocked for another worker",
                    job_label(name, *id, queue.as_deref()),
                    shared.config.shutdown_timeout.as_secs()
                ));
            }
            shared.interrupted.fetch_add(running.len() as u64, Ordering::SeqCst);
        }
        Err(e) => shared.say_error(format_args!(
            "Error while unlocking interrupted jobs {ids:?}: {e}; their locks expire after max_run_time"
        )),
    }
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

/// Worker names running in this process. Rows locked under this worker's own name at start
/// belong to a dead earlier process only if no other worker here uses the name.
struct ActiveName {
    name: String,
    first: bool,
}

static ACTIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl ActiveName {
    fn register(name: &str) -> Self {
        let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        let first = !active.iter().any(|n| n == name);
        active.push(name.to_owned());
        ActiveName {
            name: name.to_owned(),
            first,
        }
    }
}

impl Drop for ActiveName {
    fn drop(&mut self) {
        let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = active.iter().position(|n| *n == self.name) {
            active.remove(i);
        }
    }
}
