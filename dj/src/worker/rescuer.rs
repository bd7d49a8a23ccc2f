//! The rescuer: database maintenance, done by one worker at a time. Each pass is won through
//! `maintenance_claim` (a conditional update of the task's row in `dj_maintenance`), so
//! however many workers run, the cluster makes one pass per interval:
//! - `rescue`, every heartbeat interval: registered workers that are dead (see `liveness`)
//!   are removed from `dj_workers`, then their jobs are freed: a job whose start was recorded
//!   is charged one failed attempt (so a job that kills its worker runs out of attempts), the
//!   others are released untouched; the jobs of their fast lanes still waiting count a crash;
//! - `orphans`, every `rescue_interval`: rows locked by a name that is not registered (its
//!   worker was removed, or predates registration) are freed the same way once stale. This
//!   pass reads every locked row; the other reads only the small `dj_workers` table. It also
//!   deletes cancel requests whose job no longer runs, and rate limits' starts that no
//!   longer count;
//! - `reindex`, every `reindex_every` if set (PostgreSQL): the table's indexes rebuilt with
//!   `REINDEX INDEX CONCURRENTLY`;
//! - `aging`, every `priority_aging` if set: jobs ready that long behind a better priority
//!   get one step better, the worst priority first, at most `AGE_MOST` a pass;
//! - `prune`, every `PRUNE_EVERY`: rows failed for good longer ago than `keep_failed_for` are
//!   deleted, a batch at a time with a pause between batches, at most `PRUNE_MOST` per pass
//!   (the next pass goes on), so that a big backlog never holds the table for long.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::liveness::{Death, Liveness};
use super::outcome::Outcome;
use super::retry;
use super::{Shared, StopFlag};
use crate::model::{JobFilter, JobRow, JobState};

pub(super) fn spawn(shared: Arc<Shared>, done: StopFlag) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("dj-rescuer".into())
        .spawn(move || {
            let every = shared.config.heartbeat_interval();
            while !done.is_set() {
                if !shared.stop.is_set() {
                    pass(&shared);
                }
                done.sleep(every);
            }
        })
        .expect("spawn the rescuer thread")
}

/// One round: each task runs if this worker wins it.
fn pass(shared: &Shared) {
    let store = shared.db.store();
    let name = shared.name();
    let every = shared.config.heartbeat_interval();
    let result = store
        .maintenance_claim("rescue", &name, every)
        .and_then(|won| {
            if won {
                rescue_dead_workers(shared)
            } else {
                Ok(())
            }
        })
        .and_then(|()| store.maintenance_claim("orphans", &name, shared.config.rescue_interval))
        .and_then(|won| {
            if won {
                rescue_orphans(shared)?;
                store.cancel_prune()?;
                store.rate_prune().map(drop)
            } else {
                Ok(())
            }
        })
        .and_then(|()| store.maintenance_claim("prune", &name, PRUNE_EVERY))
        .and_then(|won| if won { prune(shared) } else { Ok(()) })
        .and_then(|()| match shared.config.reindex_every {
            Some(every) => store.maintenance_claim("reindex", &name, every),
            None => Ok(false),
        })
        .and_then(|won| if won { reindex(shared) } else { Ok(()) })
        .and_then(|()| match shared.config.priority_aging {
            Some(every) => store.maintenance_claim("aging", &name, every),
            None => Ok(false),
        })
        .and_then(|won| if won { age(shared) } else { Ok(()) });
    if let Err(e) = result {
        shared.say_error(format_args!("Error while looking for abandoned jobs: {e}"));
    }
}

/// Rebuilds the table's indexes (`reindex_every`), and says which.
fn reindex(shared: &Shared) -> crate::Result<()> {
    let started = std::time::Instant::now();
    let rebuilt = shared.db.store().reindex()?;
    if !rebuilt.is_empty() {
        shared.say(format_args!(
            "Rebuilt {} index(es) of delayed_jobs concurrently in {:.1}s: {}",
            rebuilt.len(),
            started.elapsed().as_secs_f64(),
            rebuilt.join(", ")
        ));
    }
    Ok(())
}

/// Priority aging: the jobs ready longer than `priority_aging` behind a better priority get
/// one step better, the worst priority first, a batch at a time, at most [`AGE_MOST`].
fn age(shared: &Shared) -> crate::Result<()> {
    let Some(every) = shared.config.priority_aging else {
        return Ok(());
    };
    let store = shared.db.store();
    let mut total = 0;
    while total < AGE_MOST && !shared.stop.is_set() {
        let raised = store.job_age(every, AGE_BATCH)?;
        total += raised;
        if raised < AGE_BATCH as u64 {
            break;
        }
    }
    if total > 0 {
        shared.say(format_args!(
            "Raised the priority of {total} job(s) ready for over {} behind better ones",
            humantime::format_duration(every)
        ));
    }
    Ok(())
}

/// Jobs one aging statement raises at most, and one pass.
const AGE_BATCH: i64 = 1_000;
const AGE_MOST: u64 = 10_000;

/// How often the cluster prunes old failed rows.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Rows one prune pass deletes at most.
const PRUNE_MOST: u64 = 100_000;

fn prune(shared: &Shared) -> crate::Result<()> {
    let store = shared.db.store();
    let failed = shared.config.keep_failed_for;
    prune_in_batches(shared, "jobs that failed", failed, |batch| {
        store.job_prune_failed(failed, batch)
    })?;
    let results = shared.config.result_retention;
    prune_in_batches(shared, "job results stored", results, |batch| {
        store.result_prune(results, batch)
    })?;
    prune_in_batches(shared, "failed attempts of jobs gone", results, |batch| {
        store.attempt_prune(results, batch)
    })?;
    prune_in_batches(shared, "workflows finished", results, |batch| {
        store.workflow_prune(results, batch)
    })?;
    let orphans = store.progress_prune()?;
    if orphans > 0 {
        shared.say(format_args!("Pruned the progress of {orphans} job(s) gone"));
    }
    Ok(())
}

/// Runs `delete` (of rows older than `age`, `batch` at most) until a batch comes back short,
/// [`PRUNE_MOST`] rows or a stop, pausing between batches; says how many went.
fn prune_in_batches(
    shared: &Shared,
    what: &str,
    age: std::time::Duration,
    mut delete: impl FnMut(i64) -> crate::Result<u64>,
) -> crate::Result<()> {
    let batch = crate::db::PRUNE_BATCH;
    let mut total = 0;
    while total < PRUNE_MOST && !shared.stop.is_set() {
        let deleted = delete(batch)?;
        total += deleted;
        if deleted < batch as u64 {
            break;
        }
        shared.stop.sleep(std::time::Duration::from_millis(50));
    }
    if total > 0 {
        shared.say(format_args!(
            "Pruned {total} {what} more than {} ago",
            humantime::format_duration(age)
        ));
    }
    Ok(())
}

fn liveness(shared: &Shared) -> crate::Result<Liveness> {
    let store = shared.db.store();
    Ok(Liveness::new(
        store.now()?,
        shared.config.heartbeat_timeout,
        store.worker_list()?,
    ))
}

pub(super) fn rescue_dead_workers(shared: &Shared) -> crate::Result<()> {
    let live = liveness(shared)?;
    // A worker judged by its heartbeat's age only once this one has reached the database
    // for a whole timeout: after an outage everyone shared, every heartbeat is old.
    let may_judge_silence = shared.beat.healthy_for(shared.config.heartbeat_timeout);
    let dead: Vec<(String, Death)> = live
        .workers()
        .filter_map(|w| live.worker_dead(w).map(|d| (w.name.clone(), d)))
        .filter(|(_, d)| !d.timed_out || may_judge_silence)
        .collect();
    for (name, death) in dead {
        rescue_worker(shared, &name, &death)?;
    }
    rescue_lanes(shared)
}

/// Fast lanes whose workers are gone (their entries removed): each of their jobs still
/// waiting counts a crash, so that it takes the ordinary claim next time.
fn rescue_lanes(shared: &Shared) -> crate::Result<()> {
    let crashed = shared.db.store().lane_rescue(None)?;
    if crashed > 0 {
        shared.say_error(format_args!(
            "Counted a crash for {crashed} job(s) of fast lanes whose workers died"
        ));
    }
    Ok(())
}

/// Declares one worker dead (removes its entry, which fences it) and frees its jobs. Nothing
/// happens if its entry is gone already or, when judged by silence, it has just answered.
pub(super) fn rescue_worker(shared: &Shared, name: &str, death: &Death) -> crate::Result<()> {
    let store = shared.db.store();
    let stale_after = death.timed_out.then_some(shared.config.heartbeat_timeout);
    if !store.worker_remove(name, stale_after)? {
        return Ok(());
    }
    shared.say_error(format_args!(
        "Worker {name} is dead: {}",
        death.reason.replace("the worker that ran it ", "")
    ));
    let rows = store.job_list(&JobFilter {
        locked_by: Some(name.to_owned()),
        ..JobFilter::default()
    })?;
    rescue_rows(shared, name, &death.reason, rows)
}

/// Rows locked by names no worker is registered under, once stale.
fn rescue_orphans(shared: &Shared) -> crate::Result<()> {
    let store = shared.db.store();
    let locked = store.job_list(&JobFilter {
        state: Some(JobState::Running),
        ..JobFilter::default()
    })?;
    if locked.is_empty() {
        return Ok(());
    }
    let live = liveness(shared)?;
    let registered: HashSet<&str> = live.workers().map(|w| w.name.as_str()).collect();
    let mut orphans: BTreeMap<String, (String, Vec<JobRow>)> = BTreeMap::new();
    for row in locked {
        let Some(locker) = row.locked_by.clone() else {
            continue;
        };
        if registered.contains(locker.as_str()) {
            continue;
        }
        if let Some(reason) = live.lock_stale(&row) {
            orphans
                .entry(locker)
                .or_insert_with(|| (reason, Vec::new()))
                .1
                .push(row);
        }
    }
    for (locker, (reason, rows)) in orphans {
        rescue_rows(shared, &locker, &reason, rows)?;
    }
    Ok(())
}

/// Frees a dead worker's rows: started ones are charged an attempt, the others released.
pub(super) fn rescue_rows(
    shared: &Shared,
    locker: &str,
    reason: &str,
    rows: Vec<JobRow>,
) -> crate::Result<()> {
    let store = shared.db.store();
    let (started, unstarted): (Vec<JobRow>, Vec<JobRow>) =
        rows.into_iter().partition(|r| r.started_at.is_some());
    if !unstarted.is_empty() {
        let ids: Vec<i64> = unstarted.iter().map(|r| r.id).collect();
        let released = store.job_release_orphaned(locker, &ids)?;
        shared.say(format_args!(
            "Released {released} job(s) that {locker} held, start not recorded (they may have been running: no attempt counted, but the next run records its start first): {ids:?}"
        ));
    }
    for row in started {
        charge(shared, locker, reason, row)?;
    }
    Ok(())
}

/// Counts a failed attempt for a started row whose worker is gone, then reschedules or fails it.
fn charge(shared: &Shared, locker: &str, reason: &str, row: JobRow) -> crate::Result<()> {
    let store = shared.db.store();
    match retry::charged(shared, reason, &row) {
        // Ready again at once: the job did not fail, its worker died.
        Outcome::Retry(retry) => store.job_retry(
            locker,
            &[crate::store::Retry {
                delay: std::time::Duration::ZERO,
                ..retry
            }],
        ),
        Outcome::Fail(fail) => store.job_fail(locker, &[fail]),
        _ => Ok(()),
    }
}
