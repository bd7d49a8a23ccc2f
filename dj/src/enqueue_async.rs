//! The async enqueue API (feature `tokio`): [`Delayed::enqueue_async`] and
//! [`enqueue_many_async`], with the same options, validation, limits, inline test mode and
//! all-or-none rule as the sync ones, onto `&Db` or the caller's own async transaction.
//!
//! Onto `&Db` the insert never blocks the caller's executor: PostgreSQL's runs on dj's own
//! I/O runtime and is awaited; SQLite's (a blocking library) runs on that runtime's blocking
//! threads. Onto the caller's transaction or connection (`sqlx`, `tokio-postgres`) it is one
//! statement per job on SQLite and one statement for all of them on PostgreSQL, sent through
//! the caller's driver, so the jobs exist only if the caller commits. The SQL is the same text
//! every driver sends.

use std::future::Future;

use crate::db::Db;
use crate::enqueue::{prepare, sealed, Prepared};
use crate::error::Result;
use crate::job::Job;
use crate::model::{Delayed, EnqueueOutcome, JobId, NewJob};

/// Where a job can be enqueued from async code: `&Db`; with feature `sqlx-postgres`,
/// `&mut sqlx::Transaction<'_, sqlx::Postgres>` and `&mut sqlx::PgConnection`; with
/// `sqlx-sqlite`, the same for `sqlx::Sqlite` / `sqlx::SqliteConnection`; with `sqlx-mysql`,
/// for `sqlx::MySql` / `sqlx::MySqlConnection`; with `tokio-postgres`, `&tokio_postgres::Transaction<'_>` and `&tokio_postgres::Client`.
pub trait EnqueueAsyncTarget: sealed::Sealed + Send {
    #[doc(hidden)]
    fn insert_jobs_async(
        self,
        rows: Vec<NewJob>,
    ) -> impl Future<Output = Result<Vec<EnqueueOutcome>>> + Send;
    #[doc(hidden)]
    fn db(&self) -> Option<Db> {
        None
    }
}

impl<J: Job> Delayed<J> {
    /// Inserts the job and returns its id, without blocking the async executor. Onto the
    /// caller's transaction, the job exists only if that transaction commits. The options and
    /// validation are [`Delayed::enqueue`]'s; a bad queue name or an oversized payload fails
    /// before anything is sent.
    pub fn enqueue_async<T: EnqueueAsyncTarget>(
        self,
        target: T,
    ) -> impl Future<Output = Result<JobId>> + Send {
        let outcome = self.enqueue_outcome_async(target);
        async move { outcome.await.map(EnqueueOutcome::id) }
    }

    /// [`Delayed::enqueue_and_wait`] for async code: enqueues onto `db`, awaits the job's
    /// recorded result as an `R` (woken by NOTIFY on PostgreSQL; holding no connection while
    /// it waits), up to `timeout`.
    pub async fn enqueue_and_wait_async<R: serde::de::DeserializeOwned>(
        self,
        db: &Db,
        timeout: std::time::Duration,
    ) -> Result<R> {
        let id = self.enqueue_async(db).await?;
        db.wait_for_result_async(id, timeout).await?.value(id)
    }

    /// [`Delayed::enqueue_async`], saying whether the job is new or a duplicate of a unique
    /// job (see [`Delayed::enqueue_outcome`]).
    pub fn enqueue_outcome_async<T: EnqueueAsyncTarget>(
        self,
        target: T,
    ) -> impl Future<Output = Result<EnqueueOutcome>> + Send {
        let prepared = prepare(vec![self], || target.db());
        async move {
            match prepared {
                Prepared::Inline(ids) => Ok(ids?[0]),
                Prepared::Rows(rows) => Ok(target.insert_jobs_async(rows?).await?[0]),
            }
        }
    }
}

/// Enqueues many jobs, all or none, and returns their ids in order: the async counterpart of
/// [`crate::enqueue_many`]. Items are job values or [`Delayed`] builders.
pub fn enqueue_many_async<T, I, J>(
    target: T,
    jobs: I,
) -> impl Future<Output = Result<Vec<JobId>>> + Send
where
    T: EnqueueAsyncTarget,
    I: IntoIterator,
    I::Item: Into<Delayed<J>>,
    J: Job,
{
    let outcomes = enqueue_many_outcomes_async(target, jobs);
    async move {
        Ok(outcomes
            .await?
            .into_iter()
            .map(EnqueueOutcome::id)
            .collect())
    }
}

/// [`enqueue_many_async`], saying for each job whether it is new or a duplicate of a unique
/// job: the async counterpart of [`crate::enqueue_many_outcomes`].
pub fn enqueue_many_outcomes_async<T, I, J>(
    target: T,
    jobs: I,
) -> impl Future<Output = Result<Vec<EnqueueOutcome>>> + Send
where
    T: EnqueueAsyncTarget,
    I: IntoIterator,
    I::Item: Into<Delayed<J>>,
    J: Job,
{
    let delayed: Vec<Delayed<J>> = jobs.into_iter().map(Into::into).collect();
    let prepared = prepare(delayed, || target.db());
    async move {
        match prepared {
            Prepared::Inline(ids) => ids,
            Prepared::Rows(rows) => target.insert_jobs_async(rows?).await,
        }
    }
}

impl EnqueueAsyncTarget for &Db {
    fn insert_jobs_async(
        self,
        rows: Vec<NewJob>,
    ) -> impl Future<Output = Result<Vec<EnqueueOutcome>>> + Send {
        let db = self.clone();
        async move { db.insert_async(rows).await }
    }
    fn db(&self) -> Option<Db> {
        Some((*self).clone())
    }
}

#[cfg(feature = "tokio-postgres")]
mod tokio_postgres_targets {
    use super::*;
    use crate::store::postgres as pg;

    impl sealed::Sealed for &tokio_postgres::Client {}
    impl EnqueueAsyncTarget for &tokio_postgres::Client {
        async fn insert_jobs_async(self, rows: Vec<NewJob>) -> Result<Vec<EnqueueOutcome>> {
            pg::insert_tokio_postgres(self, &rows).await
        }
    }
    impl sealed::Sealed for &tokio_postgres::Transaction<'_> {}
    impl EnqueueAsyncTarget for &tokio_postgres::Transaction<'_> {
        async fn insert_jobs_async(self, rows: Vec<NewJob>) -> Result<Vec<EnqueueOutcome>> {
            pg::insert_tokio_postgres(self, &rows).await
        }
    }
}

#[cfg(feature = "sqlx-postgres")]
mod sqlx_postgres_targets {
    use super::*;
    use crate::store::postgres as pg;

    impl sealed::Sealed for &mut sqlx::PgConnection {}
    impl EnqueueAsyncTarget for &mut sqlx::PgConnection {
        async fn insert_jobs_async(self, rows: Vec<NewJob>) -> Result<Vec<EnqueueOutcome>> {
            pg::insert_sqlx(self, &rows).await
        }
    }
    impl sealed::Sealed for &mut sqlx::Transaction<'_, sqlx::Postgres> {}
    impl EnqueueAsyncTarget for &mut sqlx::Transaction<'_, sqlx::Postgres> {
        async fn insert_jobs_async(self, rows: Vec<NewJob>) -> Result<Vec<EnqueueOutcome>> {
            pg::insert_sqlx(self, &rows).await
        }
    }
}

#[cfg(feature = "sqlx-mysql")]
mod sqlx_mysql_targets {
    use super::*;
    use crate::store::mysql as my;

    impl sealed::Sealed for &mut sqlx::MySqlConnection {}
    impl EnqueueAsyncTarget for &mut sqlx::MySqlConnection {
        async fn insert_jobs_async(self, rows: Vec<NewJob>) -> Result<Vec<EnqueueOutcome>> {
            my::insert_sqlx(self, &rows).await
        }
    }
    impl sealed::Sealed for &mut sqlx::Transaction<'_, sqlx::MySql> {}
    impl EnqueueAsyncTarget for &mut sqlx::Transaction<'_, sqlx::MySql> {
        async fn insert_jobs_async(self, rows: Vec<NewJob>) -> Result<Vec<EnqueueOutcome>> {
            my::insert_sqlx(self, &rows).await
        }
    }
}

#[cfg(feature = "sqlx-sqlite")]
mod sqlx_sqlite_targets {
    use super::*;
    use crate::store::sqlite as lite;

    impl sealed::Sealed for &mut sqlx::SqliteConnection {}
    impl EnqueueAsyncTarget for &mut sqlx::SqliteConnection {
        async fn insert_jobs_async(self, rows: Vec<NewJob>) -> Result<Vec<EnqueueOutcome>> {
            lite::insert_sqlx(self, &rows).await
        }
    }
    impl sealed::Sealed for &mut sqlx::Transaction<'_, sqlx::Sqlite> {}
    impl EnqueueAsyncTarget for &mut sqlx::Transaction<'_, sqlx::Sqlite> {
        async fn insert_jobs_async(self, rows: Vec<NewJob>) -> Result<Vec<EnqueueOutcome>> {
            lite::insert_sqlx(self, &rows).await
        }
    }
}
