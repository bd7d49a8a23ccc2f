//! Enqueueing: `job.delay()` gives a [`Delayed`] builder; `.enqueue(target)` inserts one row,
//! [`enqueue_many`] inserts many in one statement per batch. A target is the pooled [`Db`]
//! or the caller's own open transaction, so a job can commit or roll back with the app's data.

use std::cell::Cell;

use crate::db::Db;
use crate::error::Result;
use crate::job::Job;
use crate::model::{Delayed, EnqueueOutcome, JobId, NewJob};

impl<J: Job> Delayed<J> {
    /// Inserts the job and returns its id; nothing runs yet. With the caller's transaction as
    /// target, the job exists only if that transaction commits. For a unique job whose key
    /// is held, the id of the job holding it.
    pub fn enqueue<T: EnqueueTarget>(self, target: T) -> Result<JobId> {
        self.enqueue_outcome(target).map(EnqueueOutcome::id)
    }
    /// [`Delayed::enqueue`], saying whether the job is new or a duplicate of a unique job.
    pub fn enqueue_outcome<T: EnqueueTarget>(self, mut target: T) -> Result<EnqueueOutcome> {
        match prepare(vec![self], || target.db()) {
            Prepared::Inline(ids) => Ok(ids?[0]),
            Prepared::Rows(rows) => Ok(target.insert_jobs(&rows?)?[0]),
        }
    }
    /// Enqueues the job onto `db`, blocks until a worker has run it (or `timeout` has
    /// passed), and returns the value it recorded with [`crate::Context::set_result`] as an
    /// `R`. Errors: [`crate::Error::JobFailed`] with its error if it failed for good,
    /// [`crate::Error::NoResult`] if it did not finish in time or succeeded without recording
    /// a result (to wait for such a job, use [`Db::wait_for_result`]). An async app uses
    /// `enqueue_and_wait_async`.
    pub fn enqueue_and_wait<R: serde::de::DeserializeOwned>(
        self,
        db: &Db,
        timeout: std::time::Duration,
    ) -> Result<R> {
        let id = self.enqueue(db)?;
        db.wait_for_result(id, timeout)?.value(id)
    }
}

/// Enqueues many jobs, all or none (one transaction, or a savepoint inside the caller's), in
/// one statement per batch of [`crate::INSERT_BATCH`] rows, and returns their ids in order.
/// Items are job values or [`Delayed`] builders. A unique job that is a duplicate (of a
/// waiting job, or of an earlier item in the same call) gives the id of the job holding its
/// key.
pub fn enqueue_many<T, I, J>(target: T, jobs: I) -> Result<Vec<JobId>>
where
    T: EnqueueTarget,
    I: IntoIterator,
    I::Item: Into<Delayed<J>>,
    J: Job,
{
    let outcomes = enqueue_many_outcomes(target, jobs)?;
    Ok(outcomes.into_iter().map(EnqueueOutcome::id).collect())
}

/// [`enqueue_many`], saying for each job whether it is new or a duplicate of a unique job.
pub fn enqueue_many_outcomes<T, I, J>(mut target: T, jobs: I) -> Result<Vec<EnqueueOutcome>>
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

/// Jobs made ready for any target: validated and serialized into rows, then performed at
/// once in `dj::testing`'s inline mode.
pub(crate) enum Prepared {
    Inline(Result<Vec<EnqueueOutcome>>),
    Rows(Result<Vec<NewJob>>),
}

pub(crate) fn prepare<J: Job>(
    delayed: Vec<Delayed<J>>,
    db: impl FnOnce() -> Option<Db>,
) -> Prepared {
    let rows: Result<Vec<NewJob>> = delayed.into_iter().map(Delayed::into_row).collect();
    match INLINE.with(Cell::get) {
        Some(perform) => {
            let db = db();
            Prepared::Inline(rows.and_then(|rows| {
                rows.iter()
                    .map(|row| perform(row, db.clone()).map(EnqueueOutcome::Inserted))
                    .collect()
            }))
        }
        None => Prepared::Rows(rows),
    }
}

/// Performs a row at enqueue time instead of inserting it: what `dj::testing::inline`
/// installs on its thread while its guard lives.
pub(crate) type InlineRunner = fn(&NewJob, Option<Db>) -> Result<JobId>;

thread_local! {
    static INLINE: Cell<Option<InlineRunner>> = const { Cell::new(None) };
}

/// This thread's inline runner, if `dj::testing`'s inline mode is on.
pub(crate) fn inline_runner() -> Option<InlineRunner> {
    INLINE.with(Cell::get)
}

/// Installs (or, with `None`, removes) this thread's inline runner.
pub(crate) fn set_inline(runner: Option<InlineRunner>) {
    INLINE.with(|inline| inline.set(runner));
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Where a job can be enqueued: `&Db`, or an open transaction or connection of a backend
/// (`&mut postgres::Transaction`, `&mut postgres::Client`, `&rusqlite::Connection`,
/// `&rusqlite::Transaction`; with feature `mysql`, `&mut mysql::Transaction` and
/// `&mut mysql::Conn`; with feature `diesel-postgres`, `diesel-sqlite` or `diesel-mysql`,
/// `&mut diesel::PgConnection`, `&mut diesel::SqliteConnection` or
/// `&mut diesel::MysqlConnection`, inside whatever diesel transaction is open on it).
pub trait EnqueueTarget: sealed::Sealed {
    #[doc(hidden)]
    fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>>;
    #[doc(hidden)]
    fn db(&self) -> Option<Db> {
        None
    }
}

impl sealed::Sealed for &Db {}
impl EnqueueTarget for &Db {
    fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
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
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            pg::insert_jobs(&mut **self, rows)
        }
    }
    impl sealed::Sealed for &mut postgres::Client {}
    impl EnqueueTarget for &mut postgres::Client {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            pg::insert_jobs(&mut **self, rows)
        }
    }
}

#[cfg(feature = "diesel-postgres")]
mod diesel_postgres_targets {
    use super::*;

    impl sealed::Sealed for &mut diesel::PgConnection {}
    impl EnqueueTarget for &mut diesel::PgConnection {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            crate::store::postgres::insert_diesel(self, rows)
        }
    }
}

#[cfg(feature = "diesel-sqlite")]
mod diesel_sqlite_targets {
    use super::*;

    impl sealed::Sealed for &mut diesel::SqliteConnection {}
    impl EnqueueTarget for &mut diesel::SqliteConnection {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            crate::store::sqlite::insert_diesel(self, rows)
        }
    }
}

#[cfg(feature = "diesel-mysql")]
mod diesel_mysql_targets {
    use super::*;

    impl sealed::Sealed for &mut diesel::MysqlConnection {}
    impl EnqueueTarget for &mut diesel::MysqlConnection {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            crate::store::mysql::insert_diesel(self, rows)
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql_targets {
    use super::*;
    use crate::store::mysql as my;

    impl sealed::Sealed for &mut mysql::Transaction<'_> {}
    /// Inside the caller's transaction: the rows exist only if it commits.
    impl EnqueueTarget for &mut mysql::Transaction<'_> {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            my::insert_in_transaction(self, rows)
        }
    }
    impl sealed::Sealed for &mut mysql::Conn {}
    /// On the caller's connection, with no transaction of its open: several rows get one
    /// transaction of their own.
    impl EnqueueTarget for &mut mysql::Conn {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            my::insert_on_conn(self, rows)
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite_targets {
    use super::*;
    use crate::store::sqlite as lite;

    impl sealed::Sealed for &rusqlite::Connection {}
    impl EnqueueTarget for &rusqlite::Connection {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            lite::insert_rusqlite(self, rows)
        }
    }
    impl sealed::Sealed for &rusqlite::Transaction<'_> {}
    impl EnqueueTarget for &rusqlite::Transaction<'_> {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            lite::insert_rusqlite(self, rows)
        }
    }
}
