//! TERM and INT: the first sets the worker's stop flag (finish running jobs, then exit 0);
//! a second exits at once. Every worker process handles them itself, since platforms
//! (Heroku, systemd's default `KillMode`, a terminal's Ctrl-C) signal every process of a group.
//!
//! Under `start`, the pool supervisor forwards TERM to its workers too, so a worker may get the
//! platform's TERM *and* the forwarded one. The supervisor names itself in the child's
//! environment (`DJ_SUPERVISOR_PID`); a signal sent by it only asks for the graceful stop and
//! never counts towards "a second signal exits at once" (the supervisor escalates with SIGKILL
//! itself when it must).

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use super::Worker;

/// The environment variable through which a pool supervisor tells its workers its pid.
pub const SUPERVISOR_PID_ENV: &str = "DJ_SUPERVISOR_PID";

/// TERM/INT received from anyone but the supervisor.
static SIGNALS: AtomicUsize = AtomicUsize::new(0);
/// A stop forwarded by the supervisor.
static FORWARDED: AtomicBool = AtomicBool::new(false);
/// The supervisor's pid, 0 when not supervised.
static SUPERVISOR: AtomicI32 = AtomicI32::new(0);
/// Whether a second counted signal calls `_exit` (workers) or is left to the caller (the
/// supervisor, which first kills its children).
static EXIT_ON_SECOND: AtomicBool = AtomicBool::new(true);

extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Only async-signal-safe work here: atomics, and `_exit` on the second signal.
    let supervisor = SUPERVISOR.load(Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let sender = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_pid() }
    };
    if supervisor != 0 && sender == supervisor {
        FORWARDED.store(true, Ordering::SeqCst);
        return;
    }
    if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 && EXIT_ON_SECOND.load(Ordering::SeqCst) {
        unsafe { libc::_exit(128 + signal) };
    }
}

fn install_handlers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        for signal in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: `on_signal` is async-signal-safe and has the C signature sigaction wants
            // for SA_SIGINFO.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as usize;
                action.sa_flags = libc::SA_RESTART | libc::SA_SIGINFO;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
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
    install_handlers();
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
    install_handlers();
}

/// How many TERM/INT signals arrived so far (a supervisor's forwarded stop not included).
pub fn received() -> usize {
    SIGNALS.load(Ordering::SeqCst)
}
