//! TERM and INT: the first sets the worker's stop flag (finish running jobs, then exit 0);
//! a second exits at once, naming the jobs each worker leaves locked and when they are freed.
//! Every worker process handles them itself, since platforms (Heroku, systemd's default
//! `KillMode`, a terminal's Ctrl-C) signal every process of a group.
//!
//! Under `start`, the pool supervisor forwards TERM to its workers too, so a worker may get the
//! platform's TERM *and* the forwarded one. The supervisor names itself in the child's
//! environment (`DJ_SUPERVISOR_PID`); a signal sent by it only asks for the graceful stop and
//! never counts towards "a second signal exits at once" (the supervisor escalates with SIGKILL
//! itself when it must).
//!
//! Signals arrive through signal-hook's iterator, which reports each one's sender; nothing here
//! runs inside a signal handler.
//!
//! Only the CLI (and the dashboard's server, which needs it) install these; a build without
//! them keeps the heartbeat's `watch` alone.
#![cfg_attr(not(feature = "cli"), allow(dead_code))]

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Once, Weak};
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::exfiltrator::origin::{Origin, WithOrigin};
use signal_hook::iterator::SignalsInfo;

use super::{Shared, Worker};

/// The environment variable through which a pool supervisor tells its workers its pid.
pub const SUPERVISOR_PID_ENV: &str = "DJ_SUPERVISOR_PID";

/// TERM/INT received from anyone but the supervisor.
static SIGNALS: AtomicUsize = AtomicUsize::new(0);
/// A stop forwarded by the supervisor.
static FORWARDED: AtomicBool = AtomicBool::new(false);
/// The supervisor's pid, 0 when not supervised.
static SUPERVISOR: AtomicI32 = AtomicI32::new(0);
/// Whether a second counted signal exits (workers) or is left to the caller (the supervisor,
/// which first kills its children).
static EXIT_ON_SECOND: AtomicBool = AtomicBool::new(true);

/// Records one TERM/INT: a forwarded stop, or one more counted signal (the second of which
/// exits at once, as the default action would, with status 128 + the signal).
fn record(origin: &Origin) {
    let supervisor = SUPERVISOR.load(Ordering::SeqCst);
    if supervisor != 0 && origin.process.is_some_and(|p| p.pid == supervisor) {
        FORWARDED.store(true, Ordering::SeqCst);
        return;
    }
    if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 && EXIT_ON_SECOND.load(Ordering::SeqCst) {
        forced_exit(128 + origin.signal);
    }
}

/// The workers running in this process, so that a second signal can say what each leaves
/// locked.
static RUNNING: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Lists a running worker for the second signal's message until the guard is dropped.
pub(super) fn watch(shared: &Arc<Shared>) -> Watched {
    let weak = Arc::downgrade(shared);
    running().push(weak.clone());
    Watched(weak)
}

/// A running worker's place in [`RUNNING`].
pub(super) struct Watched(Weak<Shared>);

impl Drop for Watched {
    fn drop(&mut self) {
        running().retain(|w| !w.ptr_eq(&self.0));
    }
}

fn running() -> std::sync::MutexGuard<'static, Vec<Weak<Shared>>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Exits at once, after each running worker has said which jobs it leaves locked and when
/// they will be freed. The lines are written on a thread of their own, given half a second:
/// a full or closed log pipe must not keep the process alive.
fn forced_exit(code: i32) -> ! {
    let (said, wait) = mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("dj-forced-exit".into())
        .spawn(move || {
            let workers: Vec<Arc<Shared>> = running().iter().filter_map(Weak::upgrade).collect();
            for shared in workers {
                say_left_locked(&shared);
            }
            let _ = said.send(());
        });
    let _ = wait.recv_timeout(Duration::from_millis(500));
    // `_exit`: no destructors or exit hooks that could hang on a lock or a full pipe.
    signal_hook::low_level::exit(code)
}

/// `Second signal: exiting now, leaving N job(s) locked: [ids]`, and when another worker
/// frees them: when it finds this process gone (a worker on this host, at its next
/// maintenance pass) or this worker's heartbeat too old (any worker).
fn say_left_locked(shared: &Shared) {
    let name = shared.name();
    let held = shared.slots.held(&name);
    if held.is_empty() {
        tracing::warn!(target: "dj", "[Worker({name})] Second signal: exiting now; no jobs were locked by this worker");
        return;
    }
    let timeout = shared.config.heartbeat_timeout;
    let pass = shared.config.heartbeat_interval();
    let old_in = timeout.saturating_sub(shared.beat.since_ok());
    tracing::warn!(
        target: "dj",
        "[Worker({name})] Second signal: exiting now, leaving {} job(s) locked: {held:?}. \
         They stay locked until a worker finds this one dead: one on this host sees its \
         process gone at its next maintenance pass (every {}), any other once this worker's \
         heartbeat is {} old (in {}s); a job whose start was recorded is then charged one \
         attempt, the others are released untouched",
        held.len(),
        humantime::format_duration(pass),
        humantime::format_duration(timeout),
        old_in.as_secs_f64().ceil()
    );
}

/// Takes over TERM and INT for the rest of the process, once: a thread records each signal as
/// it arrives.
fn listen() {
    static LISTEN: Once = Once::new();
    LISTEN.call_once(|| {
        let mut signals = SignalsInfo::<WithOrigin>::new([SIGTERM, SIGINT])
            .expect("install the TERM and INT handlers");
        std::thread::Builder::new()
            .name("dj-signal-listener".into())
            .spawn(move || {
                for origin in signals.forever() {
                    record(&origin);
                }
            })
            .expect("spawn the signal listener thread");
    });
}

/// Routes TERM and INT to the worker's stop flag. Safe to call more than once; the handlers
/// are installed once.
pub fn install(worker: &Worker) {
    if let Some(pid) = std::env::var(SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        SUPERVISOR.store(pid, Ordering::SeqCst);
    }
    listen();
    let stop = worker.stop_flag();
    let name = worker.name().to_owned();
    std::thread::Builder::new()
        .name("dj-signals".into())
        .spawn(move || loop {
            if SIGNALS.load(Ordering::SeqCst) > 0 || FORWARDED.load(Ordering::SeqCst) {
                // Stop first: logging may fail (a dead supervisor's pipe) and must not keep
                // the worker running.
                let first = !stop.is_set();
                stop.set();
                if first {
                    tracing::info!(target: "dj", "[Worker({name})] Exiting...");
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        })
        .expect("spawn the signal watcher thread");
}

/// Counts TERM and INT without ever exiting: for the pool supervisor, which forwards the
/// first and answers the second by killing its workers. Read the count with [`received`].
pub fn install_counter() {
    EXIT_ON_SECOND.store(false, Ordering::SeqCst);
    listen();
}

/// How many TERM/INT signals arrived so far (a supervisor's forwarded stop not included).
pub fn received() -> usize {
    SIGNALS.load(Ordering::SeqCst)
}
