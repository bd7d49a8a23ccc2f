//! Transactional completion: a job that writes to dj's own database completes its row in the
//! transaction that holds its writes ([`crate::Context::complete_in`]), so that both commit or
//! neither. The statements are each backend's (`store::*::complete`); this layer only says which
//! of the caller's transactions can carry them.

use crate::error::Result;
use crate::model::JobId;
pub use crate::store::Completion;

mod sealed {
    /// Only dj's own impls of `CompleteTarget` and `CompleteAsyncTarget` can exist.
    pub trait Sealed {}
    #[cfg(feature = "postgres")]
    impl Sealed for &mut postgres::Transaction<'_> {}
    #[cfg(feature = "diesel-postgres")]
    impl Sealed for &mut diesel::PgConnection {}
    #[cfg(feature = "sqlite")]
    impl Sealed for &rusqlite::Transaction<'_> {}
    #[cfg(feature = "diesel-sqlite")]
    impl Sealed for &mut diesel::SqliteConnection {}
    #[cfg(feature = "tokio-postgres")]
    impl Sealed for &tokio_postgres::Transaction<'_> {}
    #[cfg(feature = "sqlx-postgres")]
    impl Sealed for &mut sqlx::Transaction<'_, sqlx::Postgres> {}
    #[cfg(feature = "sqlx-sqlite")]
    impl Sealed for &mut sqlx::Transaction<'_, sqlx::Sqlite> {}
    #[cfg(feature = "mysql")]
    impl Sealed for &mut mysql::Transaction<'_> {}
    #[cfg(feature = "sqlx-mysql")]
    impl Sealed for &mut sqlx::Transaction<'_, sqlx::MySql> {}
    #[cfg(feature = "diesel-mysql")]
    impl Sealed for &mut diesel::MysqlConnection {}
}

/// A completion about to be sent, owning what [`Completion`] borrows.
pub(crate) struct Pending {
    pub(crate) id: JobId,
    pub(crate) worker: std::sync::Arc<str>,
    pub(crate) value: Option<String>,
}

impl Pending {
    pub(crate) fn completion(&self) -> Completion<'_> {
        Completion {
            id: self.id,
            worker: &self.worker,
            value: self.value.as_deref(),
        }
    }
}

/// A transaction a job can complete its row in ([`crate::Context::complete_in`]):
/// `&mut postgres::Transaction` and `&rusqlite::Transaction`; with feature `mysql`,
/// `&mut mysql::Transaction`; with feature `diesel-postgres`, `diesel-sqlite` or
/// `diesel-mysql`, `&mut diesel::PgConnection`, `&mut diesel::SqliteConnection` or
/// `&mut diesel::MysqlConnection` inside the diesel transaction open on it.
pub trait CompleteTarget: sealed::Sealed {
    #[doc(hidden)]
    fn complete_job(&mut self, done: &Completion<'_>) -> Result<()>;
}

#[cfg(feature = "postgres")]
impl CompleteTarget for &mut postgres::Transaction<'_> {
    fn complete_job(&mut self, done: &Completion<'_>) -> Result<()> {
        crate::store::postgres::complete::complete_postgres(self, done)
    }
}

#[cfg(feature = "diesel-postgres")]
impl CompleteTarget for &mut diesel::PgConnection {
    fn complete_job(&mut self, done: &Completion<'_>) -> Result<()> {
        crate::store::postgres::complete::complete_diesel(self, done)
    }
}

#[cfg(feature = "sqlite")]
impl CompleteTarget for &rusqlite::Transaction<'_> {
    fn complete_job(&mut self, done: &Completion<'_>) -> Result<()> {
        crate::store::sqlite::complete::complete_rusqlite(self, done)
    }
}

#[cfg(feature = "diesel-sqlite")]
impl CompleteTarget for &mut diesel::SqliteConnection {
    fn complete_job(&mut self, done: &Completion<'_>) -> Result<()> {
        crate::store::sqlite::complete::complete_diesel(self, done)
    }
}

#[cfg(feature = "mysql")]
impl CompleteTarget for &mut mysql::Transaction<'_> {
    fn complete_job(&mut self, done: &Completion<'_>) -> Result<()> {
        crate::store::mysql::complete::complete_mysql(self, done)
    }
}

#[cfg(feature = "diesel-mysql")]
impl CompleteTarget for &mut diesel::MysqlConnection {
    fn complete_job(&mut self, done: &Completion<'_>) -> Result<()> {
        crate::store::mysql::complete::complete_diesel(self, done)
    }
}

/// A transaction an async job can complete its row in
/// ([`crate::Context::complete_in_async`]): with feature `tokio-postgres`,
/// `&tokio_postgres::Transaction`; with `sqlx-postgres`, `sqlx-sqlite` or `sqlx-mysql`,
/// `&mut sqlx::Transaction<'_, sqlx::Postgres>`, `&mut sqlx::Transaction<'_, sqlx::Sqlite>` or
/// `&mut sqlx::Transaction<'_, sqlx::MySql>`.
#[cfg(feature = "tokio")]
pub trait CompleteAsyncTarget: sealed::Sealed + Send {
    #[doc(hidden)]
    fn complete_job_async(
        self,
        done: Completion<'_>,
    ) -> impl std::future::Future<Output = Result<()>> + Send;
}

#[cfg(feature = "tokio-postgres")]
impl CompleteAsyncTarget for &tokio_postgres::Transaction<'_> {
    async fn complete_job_async(self, done: Completion<'_>) -> Result<()> {
        crate::store::postgres::complete::complete_tokio_postgres(self, &done).await
    }
}

#[cfg(feature = "sqlx-postgres")]
impl CompleteAsyncTarget for &mut sqlx::Transaction<'_, sqlx::Postgres> {
    async fn complete_job_async(self, done: Completion<'_>) -> Result<()> {
        crate::store::postgres::complete::complete_sqlx(self, &done).await
    }
}

#[cfg(feature = "sqlx-sqlite")]
impl CompleteAsyncTarget for &mut sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn complete_job_async(self, done: Completion<'_>) -> Result<()> {
        crate::store::sqlite::complete::complete_sqlx(self, &done).await
    }
}

#[cfg(feature = "sqlx-mysql")]
impl CompleteAsyncTarget for &mut sqlx::Transaction<'_, sqlx::MySql> {
    async fn complete_job_async(self, done: Completion<'_>) -> Result<()> {
        crate::store::mysql::complete::complete_sqlx(self, &done).await
    }
}
