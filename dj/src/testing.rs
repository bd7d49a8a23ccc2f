//! Testing support for applications: perform jobs inline, work off what was enqueued, and
//! assert on the queue.
//!
//! Inline mode is delayed_job's `delay_jobs = false`, scoped to the current thread (cargo runs
//! tests in parallel threads, so a process-wide switch would leak between tests): while the
//! guard lives, `.enqueue(..)` performs the job at once instead of inserting it, after a
//! round trip through serde, exactly as a worker would load it.

use std::cell::Cell;
use std::sync::Arc;

use crate::context::{Context, JobInfo, State};
use crate::db::Db;
use crate::enqueue::JobId;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::registry::{handler_of, load_handler};

thread_local! {
    static INLINE: Cell<usize> = const { Cell::new(0) };
}

/// Performs jobs at enqueue time on this thread until dropped.
#[derive(Debug)]
#[must_use = "inline mode ends when the guard is dropped"]
pub struct InlineGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Turns on inline mode for this thread until the returned guard is dropped.
pub fn inline() -> InlineGuard {
    INLINE.with(|n| n.set(n.get() + 1));
    InlineGuard {
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for InlineGuard {
    fn drop(&mut self) {
        INLINE.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

pub(crate) fn inline_active() -> bool {
    INLINE.with(|n| n.get() > 0)
}

/// Performs `job` now, after serializing and loading it as a worker would. Returns id 0.
pub(crate) fn perform_inline<J: Job>(job: &J, db: Option<Db>) -> Result<JobId> {
    let handler = handler_of(job)?;
    let loaded = load_handler(&handler).map_err(|e| Error::Invalid(e.0))?;
    let ctx = Context::new(
        JobInfo {
            id: 0,
            name: J::NAME.to_owned(),
            queue: J::OPTIONS.queue.map(str::to_owned),
            priority: J::OPTIONS.priority.unwrap_or(0),
            attempts: 0,
        },
        Arc::new(State::new()),
        db,
    );
    loaded.invoke(&ctx).map_err(|e| {
        Error::Invalid(format!(
            "job `{}` failed when performed inline: {}",
            J::NAME,
            e.report()
        ))
    })?;
    Ok(0)
}
