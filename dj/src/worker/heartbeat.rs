//! The heartbeat: this worker's entry in `dj_workers`. It registers the worker at start,
//! refreshes `heartbeat_at` six times per heartbeat timeout, records which running jobs have
//! started (so that only those are charged should the worker die), and removes the entry at a
//! clean exit.
//!
//! Fencing: when a heartbeat finds the entry gone, another worker declared this one dead
//! (it was frozen, partitioned, or too slow) and has already freed its jobs. Every write about
//! a row names the worker it was claimed under (`locked_by`), so nothing this worker still
//! holds can be recorded; the heartbeat marks those jobs lost, logs it, and registers again
//! under a new name. Until a heartbeat has succeeded recently, executors start nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{hostname, Shared, StopFlag};
use crate::error::Result;
use crate::store::WorkerInfo;

/// The heartbeat's view of this worker's health, read by the executors and the rescuer.
pub(super) struct Beat {
    times: Mutex<Times>,
}

struct Times {
    /// The last heartbeat the database accepted.
    last_ok: Instant,
    /// Since when every heartbeat has succeeded.
    healthy_since: Instant,
}

impl Beat {
    pub(super) fn new() -> Self {
        let now = Instant::now();
        Beat {
            times: Mutex::new(Times {
                last_ok: now,
                healthy_since: now,
            }),
        }
    }

    fn ok(&self) {
        let mut t = self.times.lock().unwrap_or_else(|e| e.into_inner());
        t.last_ok = Instant::now();
    }

    fn failed(&self) {
        let mut t = self.times.lock().unwrap_or_else(|e| e.into_inner());
        t.healthy_since = Instant::now();
    }

    /// A heartbeat succeeded within half the timeout: this worker is surely not declared dead
    /// yet, so it may start jobs it holds.
    pub(super) fn fresh(&self, timeout: Duration) -> bool {
        let t = self.times.lock().unwrap_or_else(|e| e.into_inner());
        t.last_ok.elapsed() < timeout / 2
    }

    /// How long since the last heartbeat the database accepted.
    pub(super) fn since_ok(&self) -> Duration {
        let t = self.times.lock().unwrap_or_else(|e| e.into_inner());
        t.last_ok.elapsed()
    }

    /// Every heartbeat has succeeded for at least `window`: the database has been reachable
    /// to this worker all that time, so a worker that did not heartbeat meanwhile is dead (or
    /// cut off), not merely waiting out an outage everyone shared.
    pub(super) fn healthy_for(&self, window: Duration) -> bool {
        let t = self.times.lock().unwrap_or_else(|e| e.into_inner());
        t.healthy_since.elapsed() >= window && t.last_ok.elapsed() < window / 2
    }
}

/// Worker names in use in this process: a second worker, or one registering again, gets
/// `NAME #N`. A `dj_workers` entry with this host and pid that this process did not make
/// belongs to an earlier process with the same pid (as in containers), which is gone.
static NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A unique name for this process, released when dropped.
#[derive(Debug)]
pub(super) struct NameLease(pub Arc<str>);

impl NameLease {
    pub(super) fn new(base: &str) -> NameLease {
        NameLease(Self::take(base))
    }

    /// Gives this lease's name back and takes one for `base` instead.
    pub(super) fn rename(&mut self, base: &str) {
        NAMES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| **n != *self.0);
        self.0 = Self::take(base);
    }

    fn take(base: &str) -> Arc<str> {
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        let name = (1..)
            .map(|n| match n {
                1 => base.to_owned(),
                n => format!("{base} #{n}"),
            })
            .find(|candidate| !names.contains(candidate))
            .expect("a free name");
        names.push(name.clone());
        name.into()
    }
}

impl Drop for NameLease {
    fn drop(&mut self) {
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        names.retain(|n| **n != *self.0);
    }
}

/// True if this process registered `name` (and has not released it).
pub(super) fn ours(name: &str) -> bool {
    NAMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|n| n == name)
}

/// Adds this worker's entry to `dj_workers`.
pub(super) fn register(shared: &Shared, name: &str) -> Result<()> {
    let host = hostname();
    shared.db.store().worker_register(&WorkerInfo {
        name,
        host: &host,
        pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
        queues: &shared.config.queues,
    })?;
    shared.beat.ok();
    Ok(())
}

pub(super) fn spawn(
    shared: Arc<Shared>,
    leases: Arc<Mutex<Vec<NameLease>>>,
    done: StopFlag,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("dj-heartbeat".into())
        .spawn(move || {
            // While this worker runs, a second TERM/INT names the jobs it leaves locked.
            let _watched = super::signals::watch(&shared);
            let every = shared.config.heartbeat_interval();
            let mut reported = Finished::default();
            // Throughput is only sent while the database answers heartbeats: a worker that
            // cannot reach it must not spend its shutdown waiting on a count.
            let mut answering = true;
            while !done.is_set() {
                done.sleep(every);
                if done.is_set() {
                    break;
                }
                answering = beat(&shared, &leases);
                if answering {
                    reported.report(&shared);
                }
            }
            // What finished since the last beat counts too.
            if answering {
                reported.report(&shared);
            }
        })
        .expect("spawn the heartbeat thread")
}

/// The jobs this worker finished that `dj_throughput` has been told of.
#[derive(Default)]
struct Finished {
    succeeded: u64,
    failed: u64,
}

impl Finished {
    /// Adds what finished since the last report to the current minute (nothing when none).
    fn report(&mut self, shared: &Shared) {
        use std::sync::atomic::Ordering;
        let succeeded = shared.succeeded.load(Ordering::SeqCst);
        let failed = shared.failed.load(Ordering::SeqCst);
        let (ds, df) = (succeeded - self.succeeded, failed - self.failed);
        if ds == 0 && df == 0 {
            return;
        }
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        match shared.db.store().throughput_add(as_i64(ds), as_i64(df)) {
            Ok(()) => (self.succeeded, self.failed) = (succeeded, failed),
            Err(e) => shared.say_error(format_args!("Error while recording throughput: {e}")),
        }
    }
}

/// One heartbeat: refresh the entry, record starts, or find out this worker was declared dead.
/// Returns whether the database answered.
fn beat(shared: &Shared, leases: &Mutex<Vec<NameLease>>) -> bool {
    let store = shared.db.store();
    let name = shared.name();
    let running = i32::try_from(shared.slots.running_count()).unwrap_or(i32::MAX);
    match store.worker_heartbeat(&name, running) {
        Ok(true) => {
            shared.beat.ok();
            record_starts(shared);
            true
        }
        Ok(false) => {
            shared.beat.failed();
            declared_dead(shared, leases);
            true
        }
        Err(e) => {
            shared.beat.failed();
            shared.say_error(format_args!("Error while sending the heartbeat: {e}"));
            false
        }
    }
}

/// Running jobs whose start is not recorded yet get `started_at` now.
fn record_starts(shared: &Shared) {
    let unrecorded = shared.slots.unrecorded_starts();
    if unrecorded.is_empty() {
        return;
    }
    let name = shared.name();
    let ids: Vec<i64> = unrecorded
        .iter()
        .filter(|(owner, id)| **owner == *name && !shared.lanes.contains(*id))
        .map(|(_, id)| *id)
        .collect();
    match shared.db.store().job_mark_started(&name, &ids) {
        Ok(_) => shared.slots.starts_recorded(&ids),
        Err(e) => shared.say_error(format_args!("Error while recording job starts: {e}")),
    }
}

/// Another worker removed this one's entry: its jobs were freed. Drop them all, then register
/// again under a new name.
fn declared_dead(shared: &Shared, leases: &Mutex<Vec<NameLease>>) {
    let old = shared.name();
    let lost = shared.slots.lose_all();
    shared.say_error(format_args!(
        "This worker was declared dead (no heartbeat within {}s) and lost the locks on its jobs; \
         another worker has them now",
        shared.config.heartbeat_timeout.as_secs_f64()
    ));
    for (id, name) in &lost.running {
        shared.say_error(format_args!(
            "Job {name} (id={id}) lost its lock: its outcome will not be recorded"
        ));
    }
    if !lost.unstarted.is_empty() {
        shared.say_error(format_args!(
            "{} claimed job(s) will not be started here: {:?}",
            lost.unstarted.len(),
            lost.unstarted
        ));
    }
    let base = old.split(" #").next().unwrap_or(&old).to_owned();
    let lease = NameLease::new(&base);
    let name = lease.0.clone();
    match register(shared, &name) {
        Ok(()) => {
            *shared.name.write().unwrap_or_else(|e| e.into_inner()) = name.clone();
            leases.lock().unwrap_or_else(|e| e.into_inner()).push(lease);
            tracing::info!(target: "dj", "[Worker({old})] Registered again as {name}");
        }
        Err(e) => shared.say_error(format_args!(
            "Error while registering again as {name}: {e}; retrying at the next heartbeat"
        )),
    }
}
