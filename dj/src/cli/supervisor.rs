//! `start`: the managed worker pool (`script/delayed_job start -n N`, Heroku's add-on), run in
//! the foreground as Procfiles, systemd and Kubernetes expect.
//!
//! The supervisor re-runs its own binary as `work` once per slot, each worker named `dj.N`
//! (so `locked_by` and the logs say which slot ran a job). It
//! - restarts a worker that dies, after a backoff that grows while the slot keeps crashing,
//!   and logs why it died (exit code or signal);
//! - forwards the first TERM/INT to every worker (each finishes its running jobs, unlocks
//!   what outlives `--shutdown-timeout`, and exits 0), waits for them a few seconds past that
//!   timeout, then SIGKILLs; a second TERM/INT SIGKILLs them at once;
//! - reaps every child, orphans included (`waitpid(-1)`), so it can run as a container's PID 1;
//! - makes its workers exit if it dies: `PR_SET_PDEATHSIG` sends them TERM (Linux), and a
//!   worker started after its supervisor died exits before running anything.
//!
//! TERM and INT arrive through `worker::signals` (signal-hook); sending signals (`kill`),
//! reaping (`waitpid` and its status macros), `prctl` and `getppid` stay on `libc`, since
//! signal-hook only handles signals this process receives.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use super::args::{LogFormat, StartArgs};
use super::pidfile::PidFile;
use crate::error::{Error, Result};
use crate::worker::signals;

/// Time past `--shutdown-timeout` for workers to write their unlocks and exit before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// The first restart delay of a crashing slot; doubled per consecutive crash.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A worker that ran this long before dying starts its slot's backoff afresh.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
const TICK: Duration = Duration::from_millis(50);

/// One worker process the pool keeps running.
#[derive(Debug)]
struct Slot {
    /// `dj.N`: the worker's name prefix, and `dj-N.log` with `--log-dir`.
    name: String,
    number: usize,
    queues: Vec<String>,
    pid: Option<libc::pid_t>,
    /// The loopback port its `/metrics` is on, with `--metrics-bind`.
    metrics_port: Option<u16>,
    started: Instant,
    /// Consecutive crashes, for the backoff.
    crashes: u32,
    restart_at: Option<Instant>,
}

impl Slot {
    fn queues_text(&self) -> String {
        if self.queues.is_empty() {
            "every queue".to_owned()
        } else {
            format!("queues {}", self.queues.join(","))
        }
    }
}

struct Pool<'a> {
    args: &'a StartArgs,
    url: &'a str,
    log_format: LogFormat,
    exe: PathBuf,
    slots: Vec<Slot>,
    /// Threads copying workers' output to stdout, joined (briefly) at exit.
    pipes: Vec<std::thread::JoinHandle<()>>,
    /// A worker was killed, or exited non-zero, during the shutdown.
    unclean_stop: bool,
    /// `--wait-for-database`, passed on to the workers.
    database_wait: Option<Duration>,
    /// The workers' metrics ports, for the pool's endpoint (`--metrics-bind`).
    metrics_ports: std::sync::Arc<std::sync::Mutex<Vec<u16>>>,
}

pub(super) fn start(
    url: &str,
    log_format: LogFormat,
    database_wait: Option<Duration>,
    args: &StartArgs,
) -> Result<ExitCode> {
    args.work.config()?;
    if args.work.exit_on_complete {
        return Err(Error::Invalid(
            "`start` keeps its workers running; use `workoff` to work until the queue is empty"
                .to_owned(),
        ));
    }
    let slots = plan(args)?;
    if let Some(dir) = &args.log_dir {
        std::fs::create_dir_all(dir)?;
    }
    let _pid_file = args.pid_file.as_deref().map(PidFile::create).transpose()?;
    signals::install_counter();
    let mut pool = Pool {
        args,
        url,
        log_format,
        exe: std::env::current_exe()?,
        slots,
        pipes: Vec::new(),
        unclean_stop: false,
        database_wait,
        metrics_ports: Default::default(),
    };
    #[cfg(feature = "web")]
    if let Some(bind) = args.work.metrics_bind {
        let at = crate::web::serve_pool_metrics(bind, pool.metrics_ports.clone())?;
        tracing::info!(target: "dj", "Metrics of the pool's workers at http://{at}/metrics");
    }
    tracing::info!(
        target: "dj",
        "Starting pool of {} worker(s) (pid {})",
        pool.slots.len(),
        std::process::id()
    );
    for i in 0..pool.slots.len() {
        pool.spawn(i);
    }
    let code = pool.supervise();
    pool.drain_output();
    Ok(code)
}

/// The slots `-n` or `--pool` ask for, numbered from 1.
fn plan(args: &StartArgs) -> Result<Vec<Slot>> {
    let groups: Vec<(Vec<String>, usize)> = if args.pool.is_empty() {
        let config = args.work.config()?;
        vec![(config.queues, args.workers)]
    } else {
        args.pool
            .iter()
            .map(|p| (p.queues.clone(), p.workers))
            .collect()
    };
    let prefix = args.work.name_prefix.as_deref().unwrap_or("dj");
    let mut slots = Vec::new();
    for (queues, workers) in groups {
        for _ in 0..workers {
            let number = slots.len() + 1;
            slots.push(Slot {
                name: format!("{prefix}.{number}"),
                number,
                queues: queues.clone(),
                pid: None,
                metrics_port: None,
                started: Instant::now(),
                crashes: 0,
                restart_at: None,
            });
        }
    }
    if slots.is_empty() {
        return Err(Error::Invalid(
            "the pool has no workers; pass `-n N` (N >= 1) or `--pool QUEUES:N`".to_owned(),
        ));
    }
    Ok(slots)
}

impl Pool<'_> {
    /// Tells the pool's metrics endpoint which ports its workers serve on.
    fn publish_metrics_ports(&self) {
        let ports = self.slots.iter().filter_map(|s| s.metrics_port).collect();
        *self.metrics_ports.lock().unwrap_or_else(|e| e.into_inner()) = ports;
    }

    /// The main loop: reap, restart, and on TERM/INT stop the workers. Returns the exit code.
    fn supervise(&mut self) -> ExitCode {
        loop {
            if signals::received() > 0 {
                return self.shut_down();
            }
            self.reap(false);
            let now = Instant::now();
            for i in 0..self.slots.len() {
                if self.slots[i].restart_at.is_some_and(|at| at <= now) {
                    self.spawn(i);
                }
            }
            std::thread::sleep(TICK);
        }
    }

    /// Forwards TERM, waits up to the shutdown timeout (plus [`KILL_GRACE`]), then kills.
    fn shut_down(&mut self) -> ExitCode {
        let timeout = self.args.work.shutdown_timeout;
        tracing::info!(
            target: "dj",
            "Stopping pool: TERM to {} worker(s); waiting up to {:.1}s for running jobs",
            self.live().count(),
            timeout.as_secs_f64()
        );
        for slot in &mut self.slots {
            slot.restart_at = None;
        }
        self.signal_all(libc::SIGTERM);
        let deadline = Instant::now() + timeout + KILL_GRACE;
        let mut killed = false;
        while self.live().count() > 0 {
            self.reap(true);
            if signals::received() > 1 {
                tracing::warn!(target: "dj", "Second signal: killing the workers now");
                self.signal_all(libc::SIGKILL);
                killed = true;
            } else if !killed && Instant::now() >= deadline {
                for slot in self.live() {
                    tracing::error!(
                        target: "dj",
                        "{} (pid {}) still running {:.1}s after TERM; killing it",
                        slot.name,
                        slot.pid.unwrap_or_default(),
                        (timeout + KILL_GRACE).as_secs_f64()
                    );
                }
                self.signal_all(libc::SIGKILL);
                killed = true;
            }
            std::thread::sleep(TICK);
        }
        // Orphans a job left behind, if this process is a container's PID 1.
        self.reap(true);
        if killed || self.unclean_stop {
            tracing::error!(
                target: "dj",
                "Pool stopped; some workers did not finish cleanly (their unfinished jobs stay locked until a worker rescues them)"
            );
            ExitCode::FAILURE
        } else {
            tracing::info!(target: "dj", "Pool stopped");
            ExitCode::SUCCESS
        }
    }

    fn live(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().filter(|s| s.pid.is_some())
    }

    fn signal_all(&self, signal: libc::c_int) {
        for pid in self.live().filter_map(|s| s.pid) {
            // SAFETY: signalling a child this process started and has not reaped yet.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// Collects every exited child (orphans too); schedules restarts unless `stopping`.
    fn reap(&mut self, stopping: bool) {
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: waitpid with a valid status pointer; WNOHANG never blocks.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let Some(slot) = self.slots.iter_mut().find(|s| s.pid == Some(pid)) else {
                continue; // an orphan reparented to us (PID 1): reaped, nothing else to do
            };
            slot.pid = None;
            let how = describe_exit(status);
            let clean = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            if stopping {
                if clean {
                    tracing::info!(target: "dj", "{} (pid {pid}) {how}", slot.name);
                } else {
                    self.unclean_stop = true;
                    tracing::error!(target: "dj", "{} (pid {pid}) {how} while stopping", slot.name);
                }
                continue;
            }
            let ran = slot.started.elapsed();
            slot.crashes = if ran >= HEALTHY_RUN {
                1
            } else {
                slot.crashes + 1
            };
            let delay = backoff(slot.crashes);
            slot.restart_at = Some(Instant::now() + delay);
            tracing::error!(
                target: "dj",
                "{} (pid {pid}) {}: {how} after {:.1}s; restarting in {:.1}s",
                slot.name,
                if clean { "stopped" } else { "died" },
                ran.as_secs_f64(),
                delay.as_secs_f64()
            );
        }
    }

    /// Starts slot `i`'s worker process.
    fn spawn(&mut self, i: usize) {
        let mut command = self.command(i);
        if let Err(why) = self.route_output(i, &mut command) {
            self.spawn_failed(i, &why);
            return;
        }
        die_with_parent(&mut command);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                self.spawn_failed(i, &format!("cannot start {}: {e}", self.exe.display()));
                return;
            }
        };
        self.started(i, &mut child);
    }

    /// The command line and environment of slot `i`'s worker (and its metrics port, if the
    /// pool serves metrics).
    fn command(&mut self, i: usize) -> Command {
        let slot = &self.slots[i];
        let mut command = Command::new(&self.exe);
        command
            .args(self.args.work.command_line(&slot.queues, &slot.name))
            .arg("--log-format")
            .arg(match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            })
            .env("DATABASE_URL", self.url)
            .env(signals::SUPERVISOR_PID_ENV, std::process::id().to_string())
            .env_remove("QUEUES")
            .env_remove("QUEUE")
            .stdin(Stdio::null());
        if let Some(wait) = self.database_wait {
            command.arg(format!("--wait-for-database={}", wait.as_secs_f64()));
        }
        if self.args.work.metrics_bind.is_some() {
            // A free loopback port for this worker's own endpoint, which the pool's merges.
            let port = std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port());
            if let Ok(port) = port {
                command.arg(format!("--metrics-bind=127.0.0.1:{port}"));
                self.slots[i].metrics_port = Some(port);
                self.publish_metrics_ports();
            }
        }
        command
    }

    /// The worker's output: appended to its file in `--log-dir`, else piped to this process,
    /// which prefixes each line. Fails when the file cannot be opened.
    fn route_output(&self, i: usize, command: &mut Command) -> Result<(), String> {
        let Some(dir) = &self.args.log_dir else {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            return Ok(());
        };
        let path = dir.join(format!("dj-{}.log", self.slots[i].number));
        let (out, err) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|file| Ok((file.try_clone()?, file)))
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        command.stdout(out).stderr(err);
        Ok(())
    }

    /// Records slot `i`'s new process and copies its piped output, line by line.
    fn started(&mut self, i: usize, child: &mut std::process::Child) {
        let pid = child.id() as libc::pid_t;
        let slot = &mut self.slots[i];
        slot.pid = Some(pid);
        slot.started = Instant::now();
        slot.restart_at = None;
        tracing::info!(
            target: "dj",
            "{} started (pid {pid}) on {}",
            slot.name,
            slot.queues_text()
        );
        let label = format!("{} pid:{pid}", slot.name);
        let json = self.log_format == LogFormat::Json;
        if let Some(out) = child.stdout.take() {
            self.pipes.push(copy_lines(out, label.clone(), json));
        }
        if let Some(err) = child.stderr.take() {
            self.pipes.push(copy_lines(err, label, json));
        }
        // The child is dropped without waiting: `reap` collects it with waitpid(-1).
        self.pipes.retain(|t| !t.is_finished());
    }

    fn spawn_failed(&mut self, i: usize, why: &str) {
        let slot = &mut self.slots[i];
        slot.crashes += 1;
        let delay = backoff(slot.crashes);
        slot.restart_at = Some(Instant::now() + delay);
        tracing::error!(
            target: "dj",
            "{} could not start: {why}; retrying in {:.1}s",
            slot.name,
            delay.as_secs_f64()
        );
    }

    /// Gives the output threads a moment to print the workers' last lines.
    fn drain_output(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.pipes.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The restart delay after `crashes` consecutive crashes: 0.5s, 1s, 2s, ... up to 30s.
fn backoff(crashes: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << crashes.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// Copies a worker's output to stdout line by line, each line marked with the worker: text
/// lines get a `[dj.N pid:P] ` prefix; JSON lines get a `"worker"` field.
fn copy_lines<R: Read + Send + 'static>(
    from: R,
    label: String,
    json: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            let out = if json {
                mark_json(text, &label)
            } else {
                format!("[{label}] {text}")
            };
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{out}");
            let _ = stdout.flush();
        }
    })
}

/// A JSON log line with `"worker": LABEL` added; any other line becomes such an object.
fn mark_json(text: &str, label: &str) -> String {
    let mut object = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => {
            let mut map = serde_json::Map::new();
            map.insert("message".into(), text.into());
            map
        }
    };
    object.insert("worker".into(), label.into());
    serde_json::Value::Object(object).to_string()
}

/// `exited with code 1`, `killed by signal 9 (SIGKILL)`.
fn describe_exit(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        let core = if libc::WCOREDUMP(status) {
            ", core dumped"
        } else {
            ""
        };
        format!("killed by signal {signal} ({}{core})", signal_name(signal))
    } else {
        format!("ended with wait status {status}")
    }
}

fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "unknown signal",
    }
}

/// Makes the worker get SIGTERM when this supervisor dies, and run nothing if it died
/// already (Linux's parent-death signal).
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls (prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            #[cfg(target_os = "linux")]
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor died before PR_SET_PDEATHSIG took effect: run nothing.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the pool supervisor is gone"));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{describe_exit, mark_json};

    #[test]
    fn exits_are_described() {
        assert_eq!(describe_exit(1 << 8), "exited with code 1");
        assert_eq!(describe_exit(9), "killed by signal 9 (SIGKILL)");
    }

    #[test]
    fn json_lines_name_their_worker() {
        let line = mark_json(
            r#"{"level":"INFO","message":"Starting job worker"}"#,
            "dj.1 pid:7",
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["message"], "Starting job worker");
        assert_eq!(value["worker"], "dj.1 pid:7");
        let line = mark_json("thread panicked", "dj.2 pid:8");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["message"], "thread panicked");
    }
}
