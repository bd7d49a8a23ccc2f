//! Transactional completion through the caller's own PostgreSQL transaction, one adapter per
//! driver library (sync `postgres`, `tokio-postgres`, sqlx, diesel): each sends
//! [`COMPLETE_IN`], migration 0015's `dj_complete`, which deletes the job's row (keeping its
//! result) only while its worker holds it, and otherwise raises [`NOT_HELD`], aborting the
//! caller's transaction. The `CompleteTarget` impls (in `complete`, the layer above) call these.

use crate::error::{Error, Result};
use crate::store::Completion;

/// The job's row deleted in the caller's transaction: `$1` id, `$2` worker, `$3` result
/// (JSON text, or NULL).
pub(crate) const COMPLETE_IN: &str = "SELECT dj_complete($1::int8, $2::text, $3::text)";

/// The SQLSTATE `dj_complete` raises when the worker no longer holds the job.
const NOT_HELD: &str = "DJ001";

/// A driver's error, as dj's: [`Error::NotHeld`] for `dj_complete`'s refusal.
fn refused(done: &Completion<'_>, code: Option<&str>, other: impl FnOnce() -> Error) -> Error {
    if code == Some(NOT_HELD) {
        Error::NotHeld {
            id: done.id,
            worker: done.worker.to_owned(),
        }
    } else {
        other()
    }
}

/// Through a sync `postgres` transaction.
pub(crate) fn complete_postgres(
    tx: &mut postgres::Transaction<'_>,
    done: &Completion<'_>,
) -> Result<()> {
    tx.execute(COMPLETE_IN, &[&done.id, &done.worker, &done.value])
        .map(drop)
        .map_err(|e| {
            let code = e.code().map(|c| c.code().to_owned());
            refused(done, code.as_deref(), || Error::Postgres(e))
        })
}

/// Through a `tokio-postgres` transaction.
#[cfg(feature = "tokio-postgres")]
pub(crate) async fn complete_tokio_postgres(
    tx: &tokio_postgres::Transaction<'_>,
    done: &Completion<'_>,
) -> Result<()> {
    tx.execute(COMPLETE_IN, &[&done.id, &done.worker, &done.value])
        .await
        .map(drop)
        .map_err(|e| {
            let code = e.code().map(|c| c.code().to_owned());
            refused(done, code.as_deref(), || Error::Postgres(e))
        })
}

/// Through a sqlx connection (that of the caller's transaction).
#[cfg(feature = "sqlx-postgres")]
pub(crate) async fn complete_sqlx(
    conn: &mut sqlx::PgConnection,
    done: &Completion<'_>,
) -> Result<()> {
    let sent = sqlx::query(COMPLETE_IN)
        .bind(done.id)
        .bind(done.worker)
        .bind(done.value)
        .execute(conn)
        .await;
    sent.map(drop).map_err(|e| {
        let code = e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned());
        refused(done, code.as_deref(), || crate::error::from_sqlx(e))
    })
}

/// Through a diesel connection, inside the diesel transaction open on it. (diesel keeps no
/// SQLSTATE: `dj_complete`'s refusal is known by its message.)
#[cfg(feature = "diesel-postgres")]
pub(crate) fn complete_diesel(
    conn: &mut diesel::PgConnection,
    done: &Completion<'_>,
) -> Result<()> {
    use diesel::sql_types::{BigInt, Nullable, Text};
    use diesel::RunQueryDsl as _;
    let sent = diesel::sql_query(COMPLETE_IN)
        .bind::<BigInt, _>(done.id)
        .bind::<Text, _>(done.worker)
        .bind::<Nullable<Text>, _>(done.value)
        .execute(conn);
    sent.map(drop).map_err(|e| {
        let code = match &e {
            diesel::result::Error::DatabaseError(_, info)
                if info.message().starts_with("dj: job ")
                    && info.message().contains("is no longer held by worker") =>
            {
                Some(NOT_HELD)
            }
            _ => None,
        };
        refused(done, code, || crate::error::from_diesel(e))
    })
}
