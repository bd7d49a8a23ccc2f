//! The rescuer: the worker's maintenance thread.
//! - `max_run_time`: a job past its deadline is recorded as a failed attempt ("execution
//!   expired"), its slot gets a fresh thread, and its lock is kept (and refreshed) until the
//!   overrunning code really returns, so the job never runs twice at once;
//! - dead workers: rows locked by a worker that is gone (its lease ran out, or it was on this
//!   host and its process no longer exists, or it had this worker's own name) count a failed
//!   attempt and become claimable again. A job that keeps killing its worker therefore runs out
//!   of attempts instead of looping forever.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::completer::Outcome;
use super::executor::{self, context, expired_error, failed_attempt};
use super::{hostname, job_label, Shared, StopFlag};
use crate::job::{JobError, Message};
use crate::registry::load_handler;
use crate::store::{JobFilter, JobRow, JobState};

const TICK: Duration = Duration::from_millis(100);

pub(super) fn spawn(
    shared: Arc<Shared>,
    jobs: Arc<Mutex<Receiver<JobRow>>>,
    outcomes: Sender<Outcome>,
    done: StopFlag,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("dj-rescuer".into())
        .spawn(move || run(&shared, &jobs, &outcomes, &done))
        .expect("spawn the rescuer thread")
}

fn run(
    shared: &Arc<Shared>,
    jobs: &Arc<Mutex<Receiver<JobRow>>>,
    outcomes: &Sender<Outcome>,
    done: &StopFlag,
) {
    // The first rescue ran before the worker's first claim (see `rescue_at_start`).
    let mut next_rescue = Instant::now() + shared.config.rescue_interval;
    let mut next_touch = Instant::now();
    let mut extra_slots = 0usize;
    while !done.is_set() {
        enforce_max_run_time(shared, jobs, outcomes, &mut extra_slots);
        if Instant::now() >= next_touch {
            touch_fenced(shared);
            next_touch = Instant::now() + Duration::from_secs(1);
        }
        if Instant::now() >= next_rescue && !shared.stop.is_set() {
            if let Err(e) = rescue(shared, false) {
                shared.say_error(format_args!("Error while looking for abandoned jobs: {e}"));
            }
            next_rescue = Instant::now() + shared.config.rescue_interval;
        }
        done.sleep(TICK);
    }
}

/// Jobs past their deadline: record the failed attempt now (lock kept), replace the slot.
fn enforce_max_run_time(
    shared: &Arc<Shared>,
    jobs: &Arc<Mutex<Receiver<JobRow>>>,
    outcomes: &Sender<Outcome>,
    extra_slots: &mut usize,
) {
    let now = Instant::now();
    let overdue: Vec<_> = {
        let running = shared.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .values()
            .filter(|r| now >= r.deadline && !r.expired.load(Ordering::SeqCst))
            .map(|r| {
                r.expired.store(true, Ordering::SeqCst);
                (r.row.clone(), r.name.clone(), r.job.clone(), r.max_run_time)
            })
            .collect()
    };
    for (row, name, job, max_run_time) in overdue {
        let label = job_label(&name, row.id, row.queue.as_deref());
        let ctx = context(shared, &row);
        shared.failed.fetch_add(1, Ordering::SeqCst);
        let outcome = failed_attempt(
            shared,
            Some(&*job),
            &ctx,
            &row,
            &label,
            expired_error(max_run_time),
            false,
        );
        shared
            .fenced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(row.id, max_run_time);
        let _ = outcomes.send(outcome);
        // The slot's thread is stuck in the job; free its capacity and give it a new thread.
        shared.finish_one();
        *extra_slots += 1;
        executor::spawn(
            shared.clone(),
            jobs.clone(),
            outcomes.clone(),
            shared.config.concurrency + *extra_slots,
        );
    }
}

/// Keeps the leases of overrunning jobs alive while their threads still run.
fn touch_fenced(shared: &Shared) {
    let ids: Vec<i64> = shared
        .fenced
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .copied()
        .collect();
    if ids.is_empty() {
        return;
    }
    if let Err(e) = shared.db.store().job_touch(&shared.name, &ids) {
        shared.say_error(format_args!(
            "Error while keeping locks of overrunning jobs {ids:?}: {e}"
        ));
    }
}

/// The rescue a worker runs once before its first claim. Only then can rows locked under its
/// own name be known to belong to a dead earlier process (`own_rows_are_stale`: no other
/// worker of this process uses the name).
pub(super) fn rescue_at_start(shared: &Shared, own_rows_are_stale: bool) {
    if let Err(e) = rescue(shared, own_rows_are_stale) {
        shared.say_error(format_args!("Error while looking for abandoned jobs: {e}"));
    }
}

/// Frees rows whose worker is gone. One query reads every locked row (few: at most each
/// worker's `concurrency + read_ahead`); the verdicts are made here.
fn rescue(shared: &Shared, at_start: bool) -> crate::Result<()> {
    let store = shared.db.store();
    let locked = store.job_list(&JobFilter {
        state: Some(JobState::Running),
        ..JobFilter::default()
    })?;
    if locked.is_empty() {
        return Ok(());
    }
    let stale = Staleness::new(store.now()?, shared.config.max_run_time);
    for row in locked {
        let Some(locker) = row.locked_by.clone() else {
            continue;
        };
        let reason = if locker == shared.name {
            let ours = shared
                .held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&row.id);
            if at_start {
                // A previous process with this name (same host and pid, as in containers)
                // died holding these rows.
                Some(format!("the worker that ran it ({locker}) restarted"))
            } else if !ours {
                stale.reason(&row)
            } else {
                None
            }
        } else {
            stale.reason(&row)
        };
        if let Some(reason) = reason {
            rescue_row(shared, row, &locker, reason)?;
        }
    }
    Ok(())
}

/// When a lock belongs to a worker that is gone: its process on this host no longer exists,
/// or (anywhere) the lock is older than the job's `max_run_time`. Used by the rescuer and by
/// `unlock --stale`.
#[derive(Debug)]
pub struct Staleness {
    now: SystemTime,
    default_max_run_time: Duration,
    host: String,
    pid: u32,
}

impl Staleness {
    /// Judged by the database's `now` and the default `max_run_time` of jobs without one.
    pub fn new(now: SystemTime, default_max_run_time: Duration) -> Self {
        Staleness {
            now,
            default_max_run_time,
            host: hostname(),
            pid: std::process::id(),
        }
    }

    /// Why `row`'s lock is stale, or `None` if its worker may still be running it.
    pub fn reason(&self, row: &JobRow) -> Option<String> {
        let locker = row.locked_by.as_deref()?;
        if let Some((host, pid)) = parse_worker_name(locker) {
            if host == self.host && pid != self.pid && !process_alive(pid) {
                return Some(format!(
                    "the worker that ran it ({locker}) is gone: its process no longer exists"
                ));
            }
        }
        let max_run_time = row
            .max_run_time
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.default_max_run_time, Duration::from_secs);
        let age = self.now.duration_since(row.locked_at?).ok()?;
        (age > max_run_time).then(|| {
            format!(
                "the worker that ran it ({locker}) stopped answering: its lock expired after {}s",
                max_run_time.as_secs()
            )
        })
    }
}

/// Counts a failed attempt for a row whose worker is gone, then reschedules or fails it.
fn rescue_row(shared: &Shared, row: JobRow, locker: &str, reason: String) -> crate::Result<()> {
    let store = shared.db.store();
    let label = job_label(&row.name, row.id, row.queue.as_deref());
    let ctx = context(shared, &row);
    let outcome = match load_handler(&row.handler) {
        Ok(job) => failed_attempt(
            shared,
            Some(&*job),
            &ctx,
            &row,
            &label,
            JobError::new(Message(reason)),
            true,
        ),
        Err(error) => failed_attempt(
            shared,
            None,
            &ctx,
            &row,
            &label,
            JobError::permanent(Message(error.0)),
            true,
        ),
    };
    match outcome {
        Outcome::Retry(retry) => store.job_retry(locker, &[retry]),
        Outcome::Fail(fail) => store.job_fail(locker, &[fail]),
        _ => Ok(()),
    }
}

/// `[prefix ]host:HOST pid:PID` → (HOST, PID).
pub fn parse_worker_name(name: &str) -> Option<(String, u32)> {
    let (left, pid) = name.rsplit_once("pid:")?;
    let pid: u32 = pid.trim().parse().ok()?;
    let host_start = left.rfind("host:")? + "host:".len();
    Some((left[host_start..].trim().to_owned(), pid))
}

/// True if a process with this pid exists on this host.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::parse_worker_name;

    #[test]
    fn worker_names_parse() {
        assert_eq!(
            parse_worker_name("host:web-1 pid:42"),
            Some(("web-1".into(), 42))
        );
        assert_eq!(
            parse_worker_name("mail host:a.b pid:7"),
            Some(("a.b".into(), 7))
        );
        assert_eq!(parse_worker_name("nonsense"), None);
    }
}
