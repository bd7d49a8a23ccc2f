//! The liveness rule, one definition for the rescuer and `unlock --stale`:
//! - a registered worker is dead when its heartbeat is older than the heartbeat timeout (on
//!   any host), or at once when it ran on this host and its process no longer exists (or is
//!   an earlier process that had this process's pid);
//! - a row locked by a name with no `dj_workers` entry (its worker was removed, or predates
//!   registration) is stale when its locker's process is gone from this host, or when the
//!   lock is older than the heartbeat timeout.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::{heartbeat, hostname};
use crate::model::{JobRow, WorkerRow};

/// Why a worker is dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    /// For log lines and `last_error`: "the worker that ran it (NAME) ..." follows.
    pub reason: String,
    /// Judged by its heartbeat's age (the database re-checks it when removing the entry),
    /// rather than by a process check on this host.
    pub timed_out: bool,
}

/// Judges workers and locks by the database's clock and the registered workers.
#[derive(Debug)]
pub struct Liveness {
    now: SystemTime,
    timeout: Duration,
    host: String,
    pid: u32,
    workers: HashMap<String, WorkerRow>,
}

impl Liveness {
    /// `now` is the database's clock; `workers` its `dj_workers` entries.
    pub fn new(now: SystemTime, timeout: Duration, workers: Vec<WorkerRow>) -> Self {
        Liveness {
            now,
            timeout,
            host: hostname(),
            pid: std::process::id(),
            workers: workers.into_iter().map(|w| (w.name.clone(), w)).collect(),
        }
    }

    /// The registered workers, by name.
    pub fn workers(&self) -> impl Iterator<Item = &WorkerRow> {
        self.workers.values()
    }

    /// Why a registered worker is dead, or `None` if it may be alive.
    pub fn worker_dead(&self, worker: &WorkerRow) -> Option<Death> {
        let pid = u32::try_from(worker.pid).ok()?;
        if worker.host == self.host {
            if pid != self.pid && !process_alive(pid) {
                return Some(Death {
                    reason: format!(
                        "the worker that ran it ({}) is gone: its process no longer exists",
                        worker.name
                    ),
                    timed_out: false,
                });
            }
            if pid == self.pid && !heartbeat::ours(&worker.name) {
                return Some(Death {
                    reason: format!(
                        "the worker that ran it ({}) is gone: a new process has its pid",
                        worker.name
                    ),
                    timed_out: false,
                });
            }
        }
        let silent = self.now.duration_since(worker.heartbeat_at).ok()?;
        (silent > self.timeout).then(|| Death {
            reason: format!(
                "the worker that ran it ({}) stopped answering: no heartbeat for {:.0}s",
                worker.name,
                silent.as_secs_f64()
            ),
            timed_out: true,
        })
    }

    /// Why `row`'s lock is stale, or `None` if its worker may still be running it.
    pub fn lock_stale(&self, row: &JobRow) -> Option<String> {
        let locker = row.locked_by.as_deref()?;
        if let Some(worker) = self.workers.get(locker) {
            return self.worker_dead(worker).map(|d| d.reason);
        }
        if let Some((host, pid)) = parse_worker_name(locker) {
            if host == self.host && pid != self.pid && !process_alive(pid) {
                return Some(format!(
                    "the worker that ran it ({locker}) is gone: its process no longer exists"
                ));
            }
        }
        let age = self.now.duration_since(row.locked_at?).ok()?;
        (age > self.timeout).then(|| {
            format!(
                "the worker that ran it ({locker}) is not registered and its lock is {:.0}s old",
                age.as_secs_f64()
            )
        })
    }
}

/// `[prefix ]host:HOST pid:PID[ #N]` → (HOST, PID).
pub fn parse_worker_name(name: &str) -> Option<(String, u32)> {
    let (left, right) = name.rsplit_once("pid:")?;
    let pid: u32 = right.split_whitespace().next()?.parse().ok()?;
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
        assert_eq!(parse_worker_name("host:a pid:7 #3"), Some(("a".into(), 7)));
        assert_eq!(parse_worker_name("nonsense"), None);
    }
}
