//! The pool's pid file, and the `stop` and `status` commands that read it, for people who
//! run `start` daemonized (start-stop-daemon, nohup, an init script).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use super::args::{StatusArgs, StopArgs};
use super::inspect::{workers_table, WorkerView};
use super::output::json;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::model::WorkerRow;

/// A pid file holding this process's pid; removed when dropped.
#[derive(Debug)]
pub(super) struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's pid to `path`, unless a live process already owns it.
    pub(super) fn create(path: &Path) -> Result<PidFile> {
        if let Some(pid) = read(path)? {
            if running(pid) && pid != std::process::id() {
                return Err(Error::Invalid(format!(
                    "a dj pool is already running with pid {pid} (per {}); stop it first with `stop --pid-file {}`",
                    path.display(),
                    path.display()
                )));
            }
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFile {
            path: path.to_owned(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if read(&self.path).ok().flatten() == Some(std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The pid in a pid file; `None` when there is no file.
fn read(path: &Path) -> Result<Option<u32>> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse::<u32>().map(Some).map_err(|_| {
            Error::Invalid(format!(
                "{} does not hold a pid: {:?}",
                path.display(),
                text.trim()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// True if `pid` is a live process (a zombie awaiting its parent's `wait` is not).
pub(super) fn running(pid: u32) -> bool {
    if !crate::worker::process_alive(pid) {
        return false;
    }
    // /proc/PID/stat is `PID (COMM) STATE ...`; COMM may hold spaces and parentheses.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => true,
    }
}

/// `status`: exit 0 if the pool runs, 3 if it does not (the LSB init-script convention).
pub(super) fn status(db: &Db, args: &StatusArgs) -> Result<ExitCode> {
    let pid = read(&args.pid_file)?;
    let alive = pid.is_some_and(running);
    // The pool's workers as they registered: this host, children of the pool's process.
    let workers = match pid.filter(|_| alive) {
        Some(pool) => pool_workers(db, pool),
        None => Ok(Vec::new()),
    };
    let now = db.now().unwrap_or_else(|_| SystemTime::now());
    if args.json {
        // `workers` is always a list; when the database could not say, it is empty and
        // `workers_error` says why.
        let views: Vec<_> = workers
            .as_ref()
            .map(|w| w.iter().map(|w| WorkerView::of(w, now)).collect())
            .unwrap_or_default();
        json(serde_json::json!({
            "running": alive,
            "pid": pid.filter(|_| alive),
            "pid_file": args.pid_file.display().to_string(),
            "workers": views,
            "workers_error": workers.as_ref().err().map(|e| e.to_string()),
        }));
    } else {
        if alive {
            match &workers {
                Ok(workers) => workers_table(workers, now),
                Err(e) => println!("(workers unknown: {e})"),
            }
        }
        match pid {
            Some(pid) if alive => println!("dj pool is running (pid {pid})"),
            Some(pid) => println!(
                "dj pool is not running ({} names pid {pid}, which is gone)",
                args.pid_file.display()
            ),
            None => println!(
                "dj pool is not running (no pid file at {})",
                args.pid_file.display()
            ),
        }
    }
    Ok(if alive {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// `stop`: TERM to the pool, then wait until it has exited (its workers finish their jobs).
pub(super) fn stop(args: &StopArgs) -> Result<ExitCode> {
    let Some(pid) = read(&args.pid_file)?.filter(|&pid| running(pid)) else {
        println!("dj pool is not running");
        return Ok(ExitCode::SUCCESS);
    };
    let target = libc::pid_t::try_from(pid)
        .map_err(|_| Error::Invalid(format!("pid {pid} is out of range")))?;
    // SAFETY: sending TERM to the process named by the pid file.
    if unsafe { libc::kill(target, libc::SIGTERM) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    println!("Sent TERM to the dj pool (pid {pid}); waiting for its workers to finish");
    let deadline = Instant::now() + args.timeout;
    while running(pid) {
        if Instant::now() >= deadline {
            return Err(Error::Invalid(format!(
                "the dj pool (pid {pid}) is still running after {:?}; run `stop` again to make its workers exit at once",
                args.timeout
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("dj pool stopped");
    Ok(ExitCode::SUCCESS)
}

/// Registered workers on this host whose parent process is the pool.
fn pool_workers(db: &Db, pool: u32) -> Result<Vec<WorkerRow>> {
    let host = crate::worker::hostname();
    Ok(db
        .workers()?
        .into_iter()
        .filter(|w| {
            w.host == host && u32::try_from(w.pid).is_ok_and(|p| parent_of(p) == Some(pool))
        })
        .collect())
}

/// A process's parent, from `/proc/PID/stat` (Linux).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...: comm may hold spaces and parentheses; ppid follows the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}
