//! The stop flag: set by a signal or by the application, checked by every part of a worker,
//! and able to cut a sleep short.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A shared "please stop" flag. Cloning gives another handle on the same flag.
#[derive(Debug, Clone, Default)]
pub struct StopFlag {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    set: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl StopFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the worker to stop claiming, finish its running jobs and return.
    pub fn set(&self) {
        self.inner.set.store(true, Ordering::SeqCst);
        let _guard = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.wake.notify_all();
    }
    /// True once [`StopFlag::set`] was called.
    pub fn is_set(&self) -> bool {
        self.inner.set.load(Ordering::SeqCst)
    }
    /// Sleeps for `duration`, or less if the flag is set meanwhile.
    pub fn sleep(&self, duration: Duration) {
        let deadline = Instant::now() + duration;
        let mut guard = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        while !self.is_set() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            guard = self
                .inner
                .wake
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
