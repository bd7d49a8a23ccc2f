//! Enqueueing: `job.delay()` gives a [`Delayed`] builder; `.enqueue(target)` inserts one row,
//! [`enqueue_many`] inserts many in one statement per batch. A target is the pooled [`Db`]
//! or the caller's own open transaction, so a job can commit or roll back with the app's data.

use std::time::{Duration, SystemTime};

use crate::db::Db;
use crate::error::Result;
use crate::job::Job;
use crate::registry::handler_of;

/// The id of an enqueued job (its `delayed_jobs.id`).
pub type JobId = i64;

/// A job on its way into the table: set options, then call [`Delayed::enqueue`].
///
/// ```
/// use std::time::Duration;
/// use dj::{Job, Perform};
/// # use serde::{Deserialize, Serialize};
///
/// #[derive(Job, Serialize, Deserialize)]
/// #[job(queue = "mail")]
/// struct Remind {
///     user_id: i64,
/// }
/// # impl Perform for Remind {
/// #     type Error = std::io::Error;
/// #     fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> { Ok(()) }
/// # }
///
/// # fn main() -> Result<(), dj::Error> {
/// # let dir = std::env::temp_dir().join(format!("dj-doc-delayed-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display()))?;
/// # db.migrate()?;
/// let id = Remind { user_id: 7 }
///     .delay()
///     .priority(-5)                       // lower runs first
///     .queue("urgent")                    // instead of the type's "mail"
///     .run_in(Duration::from_secs(3600))  // by the database's clock
///     .enqueue(&db)?;
/// let row = db.job(id)?.expect("stored");
/// assert_eq!((row.priority, row.queue.as_deref()), (-5, Some("urgent")));
///
/// let ids = dj::enqueue_many(&db, (1..=3).map(|user_id| Remind { user_id }))?;
/// assert_eq!(ids.len(), 3);               // all or none
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a delayed job does nothing until `.enqueue(..)` is called"]
pub struct Delayed<J> {
    job: J,
    priority: Option<i32>,
    queue: Option<String>,
    run_at: RunAt,
}

/// When a new row becomes ready. Relative times are added to the database's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunAt {
    Now,
    In(Duration),
    At(SystemTime),
}

impl RunAt {
    /// As every backend's insert binds it: an absolute time in unix seconds (or none), and
    /// seconds to add to the database's now. Plain floats, so that every driver binds them
    /// the same way with no time crate.
    pub(crate) fn values(self) -> (Option<f64>, f64) {
        match self {
            RunAt::Now => (None, 0.0),
            RunAt::In(delay) => (None, delay.as_secs_f64()),
            RunAt::At(when) => {
                let secs = match when.duration_since(std::time::UNIX_EPOCH) {
                    Ok(d) => d.as_secs_f64(),
                    Err(e) => -e.duration().as_secs_f64(),
                };
                (Some(secs), 0.0)
            }
        }
    }
}

/// A row ready to insert: what every backend's insert takes. (Public only because the sealed
/// [`EnqueueTarget`] names it; nothing outside dj can build one.)
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct NewJob {
    pub(crate) name: &'static str,
    pub(crate) handler: String,
    pub(crate) priority: i32,
    pub(crate) queue: Option<String>,
    pub(crate) run_at: RunAt,
    /// The job's own `max_run_time` in seconds, if it has one; it also bounds its lock.
    pub(crate) max_run_time: Option<i32>,
}

impl<J: Job> Delayed<J> {
    pub(crate) fn new(job: J) -> Self {
        Delayed {
            job,
            priority: None,
            queue: None,
            run_at: RunAt::Now,
        }
    }
    /// Lower runs first; the default is the type's `#[job(priority = ..)]`, else 0.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }
    /// The queue; the default is the type's `#[job(queue = ..)]`, else none.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    /// Not before this time.
    pub fn run_at(mut self, when: SystemTime) -> Self {
        self.run_at = RunAt::At(when);
        self
    }
    /// Not before this long from now (by the database's clock).
    pub fn run_in(mut self, delay: Duration) -> Self {
        self.run_at = RunAt::In(delay);
        self
    }
    /// Inserts the job and returns its id; nothing runs yet. With the caller's transaction as
    /// target, the job exists only if that transaction commits.
    pub fn enqueue<T: EnqueueTarget>(self, mut target: T) -> Result<JobId> {
        match prepare(vec![self], || target.db()) {
            Prepared::Inline(ids) => Ok(ids?[0]),
            Prepared::Rows(rows) => Ok(target.insert_jobs(&rows?)?[0]),
        }
    }

    pub(crate) fn into_row(self) -> Result<NewJob> {
        let handler = handler_of(&self.job)?;
        let queue = self.queue.or_else(|| J::OPTIONS.queue.map(str::to_owned));
        crate::validate::queue_name(queue.as_deref())?;
        Ok(NewJob {
            name: J::NAME,
            handler,
            priority: self.priority.or(J::OPTIONS.priority).unwrap_or(0),
            queue,
            run_at: self.run_at,
            max_run_time: crate::Perform::max_run_time(&self.job)
                .or(J::OPTIONS.max_run_time)
                .map(|d| i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)),
        })
    }
}

/// Enqueues many jobs, all or none (one transaction, or a savepoint inside the caller's), in
/// one statement per batch of [`crate::INSERT_BATCH`] rows, and returns their ids in order. Items are job values or [`Delayed`] builders.
pub fn enqueue_many<T, I, J>(mut target: T, jobs: I) -> Result<Vec<JobId>>
where
    T: EnqueueTarget,
    I: IntoIterator,
    I::Item: Into<Delayed<J>>,
    J: Job,
{
    let delayed: Vec<Delayed<J>> = jobs.into_iter().map(Into::into).collect();
    match prepare(delayed, || target.db()) {
        Prepared::Inline(ids) => ids,
        Prepared::Rows(rows) => target.insert_jobs(&rows?),
    }
}

/// Jobs made ready for any target: performed at once in `dj::testing`'s inline mode, else
/// validated and serialized into rows.
pub(crate) enum Prepared {
    Inline(Result<Vec<JobId>>),
    Rows(Result<Vec<NewJob>>),
}

pub(crate) fn prepare<J: Job>(
    delayed: Vec<Delayed<J>>,
    db: impl FnOnce() -> Option<Db>,
) -> Prepared {
    if crate::testing::inline_active() {
        let db = db();
        return Prepared::Inline(
            delayed
                .iter()
                .map(|d| crate::testing::perform_inline(&d.job, db.clone()))
                .collect(),
        );
    }
    Prepared::Rows(delayed.into_iter().map(Delayed::into_row).collect())
}

impl<J: Job> From<J> for Delayed<J> {
    fn from(job: J) -> Self {
        Delayed::new(job)
    }
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Where a job can be enqueued: `&Db`, or an open transaction or connection of a backend
/// (`&mut postgres::Transaction`, `&mut postgres::Client`, `&rusqlite::Connection`,
/// `&rusqlite::Transaction`; with feature `diesel-postgres` or `diesel-sqlite`,
/// `&mut diesel::PgConnection` or `&mut diesel::SqliteConnection`, inside whatever diesel
/// transaction is open on it).
pub trait EnqueueTarget: sealed::Sealed {
    #[doc(hidden)]
    fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<JobId>>;
    #[doc(hidden)]
    fn db(&self) -> Option<Db> {
        None
    }
}

impl sealed::Sealed for &Db {}
impl EnqueueTarget for &Db {
    fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<JobId>> {
        self.store().job_insert_many(rows)
    }
    fn db(&self) -> Option<Db> {
        Some((*self).clone())
    }
}

#[cfg(feature = "postgres")]
mod postgres_targets {
    use super::*;
    use crate::store::postgres as pg;

    impl sealed::Sealed for &mut postgres::Transaction<'_> {}
    impl EnqueueTarget for &mut postgres::Transaction<'_> {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<JobId>> {
            pg::insert_jobs(&mut **self, rows)
        }
    }
    impl sealed::Sealed for &mut postgres::Client {}
    impl EnqueueTarget for &mut postgres::Client {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<JobId>> {
            pg::insert_jobs(&mut **self, rows)
        }
    }
}

#[cfg(feature = "diesel-postgres")]
mod diesel_postgres_targets {
    use super::*;

    impl sealed::Sealed for &mut diesel::PgConnection {}
    impl EnqueueTarget for &mut diesel::PgConnection {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<JobId>> {
            crate::store::postgres::insert_diesel(self, rows)
        }
    }
}

#[cfg(feature = "diesel-sqlite")]
mod diesel_sqlite_targets {
    use super::*;

    impl sealed::Sealed for &mut diesel::SqliteConnection {}
    impl EnqueueTarget for &mut diesel::SqliteConnection {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<JobId>> {
            crate::store::sqlite::insert_diesel(self, rows)
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite_targets {
    use super::*;
    use crate::store::sqlite as lite;

    impl sealed::Sealed for &rusqlite::Connection {}
    impl EnqueueTarget for &rusqlite::Connection {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<JobId>> {
            lite::insert_jobs(self, rows)
        }
    }
    impl sealed::Sealed for &rusqlite::Transaction<'_> {}
    impl EnqueueTarget for &rusqlite::Transaction<'_> {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<JobId>> {
            lite::insert_jobs(self, rows)
        }
    }
}
