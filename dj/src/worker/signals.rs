//! TERM and INT: the first sets the worker's stop flag (finish running jobs, then exit 0);
//! a second exits at once. Every worker process handles them itself, since platforms
//! (Heroku, Kubernetes, systemd) signal every process of a group.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use super::StopFlag;

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // Only async-signal-safe work here: an atomic add, and `_exit` on the second signal.
    if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 {
        unsafe { libc::_exit(128 + signal) };
    }
}

/// Routes TERM and INT to `stop`. Safe to call more than once; the handlers are installed once.
pub fn install(stop: &StopFlag) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        for signal in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: `on_signal` is async-signal-safe and has the C signature sigaction wants.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    });
    let stop = stop.clone();
    std::thread::Builder::new()
        .name("dj-signals".into())
        .spawn(move || loop {
            if SIGNALS.load(Ordering::SeqCst) > 0 {
                if !stop.is_set() {
                    tracing::info!(target: "dj", "Exiting...");
                }
                stop.set();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        })
        .expect("spawn the signal watcher thread");
}

/// How many TERM/INT signals arrived so far.
pub fn received() -> usize {
    SIGNALS.load(Ordering::SeqCst)
}
