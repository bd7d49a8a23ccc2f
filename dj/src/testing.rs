//! Testing support for applications: perform jobs inline, work off what was enqueued, and
//! assert on the queue.
//!
//! Inline mode is delayed_job's `delay_jobs = false`, scoped to the current thread (cargo runs
//! tests in parallel threads, so a process-wide switch would leak between tests): while the
//! guard lives, `.enqueue(..)` performs the job at once instead of inserting it, after a round
//! trip through serde, exactly as a worker would load it. A failing job makes `enqueue`
//! return the error.
//!
//! ```
//! use dj::{Job, Perform};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Job, Serialize, Deserialize)]
//! #[job(queue = "mail")]
//! struct Welcome { user_id: i64 }
//!
//! impl Perform for Welcome {
//!     type Error = std::io::Error;
//!     fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> { Ok(()) }
//! }
//!
//! # fn main() -> Result<(), dj::Error> {
//! # let dir = std::env::temp_dir().join(format!("dj-doc-testing-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let db = dj::Db::open(&format!("sqlite:{}", dir.join("app.db").display()))?;
//! db.migrate()?;
//!
//! // Assert on what was enqueued, then work it off.
//! Welcome { user_id: 7 }.delay().enqueue(&db)?;
//! dj::testing::assert_enqueued::<Welcome>(&db, |w| w.job.user_id == 7 && w.queue.as_deref() == Some("mail"));
//! let report = dj::testing::work_off(&db, 10)?;
//! assert_eq!((report.succeeded, report.failed), (1, 0));
//!
//! // Or perform at enqueue time, in this test only.
//! let _inline = dj::testing::inline();
//! Welcome { user_id: 8 }.delay().enqueue(&db)?;
//! dj::testing::assert_not_enqueued::<Welcome>(&db);
//! # Ok(())
//! # }
//! ```

use std::cell::RefCell;
use std::sync::Arc;
use std::time::SystemTime;

use crate::context::{Context, JobInfo, State};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::handler::args_of;
use crate::job::Job;
use crate::model::{JobFilter, JobId, JobRow, NewJob};
use crate::registry::load_handler;
use crate::worker::{Report, Worker};

thread_local! {
    /// The states of the inline guards alive on this thread, innermost last.
    static INLINE: RefCell<Vec<Arc<State>>> = const { RefCell::new(Vec::new()) };
}

/// Performs jobs at enqueue time on this thread until dropped.
#[derive(Debug)]
#[must_use = "inline mode ends when the guard is dropped"]
pub struct InlineGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Turns on inline mode for this thread until the returned guard is dropped.
pub fn inline() -> InlineGuard {
    inline_with(State::new())
}

/// Inline mode whose jobs see `state` through their [`Context`].
pub fn inline_with(state: State) -> InlineGuard {
    INLINE.with(|s| s.borrow_mut().push(Arc::new(state)));
    crate::enqueue::set_inline(Some(perform_inline));
    InlineGuard {
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for InlineGuard {
    fn drop(&mut self) {
        let empty = INLINE.with(|s| {
            let mut states = s.borrow_mut();
            states.pop();
            states.is_empty()
        });
        if empty {
            crate::enqueue::set_inline(None);
        }
    }
}

/// Performs `row` now, loading its handler as a worker would, with the queue and priority
/// the row was given. Returns id 0.
fn perform_inline(row: &NewJob, db: Option<Db>) -> Result<JobId> {
    let loaded = load_handler(&row.handler).map_err(|e| Error::Invalid(e.0))?;
    let state = INLINE
        .with(|s| s.borrow().last().cloned())
        .unwrap_or_default();
    let ctx = Context::new(
        JobInfo {
            id: 0,
            name: row.name.to_owned(),
            queue: row.queue.clone(),
            priority: row.priority,
            attempts: 0,
            snoozes: 0,
            claimed_at: None,
        },
        state,
        db,
    );
    loaded.invoke(&ctx).map_err(|e| {
        Error::Invalid(format!(
            "job `{}` failed when performed inline: {}",
            row.name,
            e.report()
        ))
    })?;
    Ok(0)
}

/// Performs up to `max` ready jobs with a default worker and returns how many succeeded and
/// failed (failed ones are rescheduled, as a worker would).
pub fn work_off(db: &Db, max: u64) -> Result<Report> {
    Worker::new(db.clone()).work_off(max)
}

/// An enqueued job of type `J`, loaded back from its row.
#[derive(Debug, Clone)]
pub struct Enqueued<J> {
    /// The row's id.
    pub id: JobId,
    /// The job, deserialized from its handler.
    pub job: J,
    /// Its queue.
    pub queue: Option<String>,
    /// Its priority.
    pub priority: i32,
    /// Not before this time.
    pub run_at: SystemTime,
    /// Failed attempts so far.
    pub attempts: i32,
}

/// The not-failed jobs of type `J` in the table, oldest first, whether stored under its
/// name or one of its `aliases`.
pub fn enqueued<J: Job>(db: &Db) -> Result<Vec<Enqueued<J>>> {
    let mut rows = Vec::new();
    for name in std::iter::once(J::NAME).chain(J::ALIASES.iter().copied()) {
        rows.extend(db.jobs(&JobFilter {
            name: Some(name.to_owned()),
            ..JobFilter::default()
        })?);
    }
    rows.sort_by_key(|row| row.id);
    rows.into_iter()
        .filter(|r| r.failed_at.is_none())
        .map(|row| decode(&row))
        .collect()
}

/// A row loaded back as `J`, through the stored-handler format every load uses.
fn decode<J: Job>(row: &JobRow) -> Result<Enqueued<J>> {
    let job = args_of::<J>(&row.handler).map_err(|e| {
        Error::Invalid(format!(
            "job {} is named `{}` but its fields do not load: {e}",
            row.id,
            J::NAME
        ))
    })?;
    Ok(Enqueued {
        id: row.id,
        job,
        queue: row.queue.clone(),
        priority: row.priority,
        run_at: row.run_at,
        attempts: row.attempts,
    })
}

/// Panics unless some enqueued job of type `J` satisfies `matches`; the message lists what
/// is enqueued, each job as its stored JSON (so `J` need not be `Debug`, as the struct of a
/// `#[dj::job]` function is not).
#[track_caller]
pub fn assert_enqueued<J: Job>(db: &Db, matches: impl Fn(&Enqueued<J>) -> bool) {
    let jobs = enqueued::<J>(db).expect("dj::testing: read the queue");
    if !jobs.iter().any(&matches) {
        panic!(
            "expected an enqueued `{}` matching the predicate; enqueued: {}",
            J::NAME,
            listing(&jobs)
        );
    }
}

/// Panics if any job of type `J` is enqueued.
#[track_caller]
pub fn assert_not_enqueued<J: Job>(db: &Db) {
    let jobs = enqueued::<J>(db).expect("dj::testing: read the queue");
    if !jobs.is_empty() {
        panic!(
            "expected no enqueued `{}`; enqueued: {}",
            J::NAME,
            listing(&jobs)
        );
    }
}

/// One line per job for an assertion's message: its id, queue, priority and stored arguments.
fn listing<J: Job>(jobs: &[Enqueued<J>]) -> String {
    if jobs.is_empty() {
        return "none".to_owned();
    }
    jobs.iter()
        .map(|e| {
            let args = serde_json::to_string(&e.job).unwrap_or_else(|error| format!("<{error}>"));
            format!(
                "\n  id {} (queue {:?}, priority {}, attempts {}): {args}",
                e.id, e.queue, e.priority, e.attempts
            )
        })
        .collect()
}
