//! Transactional completion through the caller's own SQLite transaction, one adapter per
//! driver library (rusqlite, sqlx, diesel): each sends [`COMPLETE_IN`], which deletes the
//! job's row only while its worker holds it and is registered, then keeps its result
//! ([`RESULT_KEEP`]). A row not deleted is [`Error::NotHeld`]: the caller's transaction must
//! not commit (SQLite has no way to abort it from a statement: `perform` returns the error, and
//! the driver rolls back as the transaction is dropped). The `CompleteTarget` impls (in
//! `complete`, the layer above) call these.

use super::sql::RESULT_KEEP;
use crate::error::{Error, Result};
use crate::store::Completion;

/// `?1` id, `?2` worker: the job's row deleted if the worker still holds it and is still
/// registered; its name returned.
pub(crate) const COMPLETE_IN: &str = "DELETE FROM delayed_jobs \
     WHERE id = ?1 AND locked_by = ?2 AND EXISTS (SELECT 1 FROM dj_workers WHERE name = ?2) \
     RETURNING name";

/// The refusal, when no row was deleted.
fn not_held(done: &Completion<'_>) -> Error {
    Error::NotHeld {
        id: done.id,
        worker: done.worker.to_owned(),
    }
}

/// Through a rusqlite transaction (begun `IMMEDIATE`, so that its first write does not fail
/// with SQLITE_BUSY behind the worker's).
pub(crate) fn complete_rusqlite(
    tx: &rusqlite::Transaction<'_>,
    done: &Completion<'_>,
) -> Result<()> {
    let mut delete = tx.prepare_cached(COMPLETE_IN)?;
    let names = delete
        .query_map(rusqlite::params![done.id, done.worker], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let Some(name) = names.into_iter().next() else {
        return Err(not_held(done));
    };
    if let Some(value) = done.value {
        tx.execute(
            &RESULT_KEEP,
            rusqlite::params![done.id, name, "succeeded", value, None::<String>],
        )?;
    }
    Ok(())
}

/// Through a sqlx connection (that of the caller's transaction).
#[cfg(feature = "sqlx-sqlite")]
pub(crate) async fn complete_sqlx(
    conn: &mut sqlx::SqliteConnection,
    done: &Completion<'_>,
) -> Result<()> {
    use crate::error::from_sqlx;
    // `fetch_all`: see `targets` (sqlx's SQLite worker drops a statement's end otherwise).
    let names: Vec<(String,)> = sqlx::query_as(COMPLETE_IN)
        .bind(done.id)
        .bind(done.worker)
        .fetch_all(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    let Some((name,)) = names.into_iter().next() else {
        return Err(not_held(done));
    };
    if let Some(value) = done.value {
        sqlx::query(&RESULT_KEEP)
            .bind(done.id)
            .bind(name)
            .bind("succeeded")
            .bind(value)
            .bind(None::<String>)
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    }
    Ok(())
}

/// Through a diesel connection, inside the diesel transaction open on it.
#[cfg(feature = "diesel-sqlite")]
pub(crate) fn complete_diesel(
    conn: &mut diesel::SqliteConnection,
    done: &Completion<'_>,
) -> Result<()> {
    use crate::error::from_diesel;
    use diesel::sql_types::{BigInt, Nullable, Text};
    use diesel::RunQueryDsl as _;

    #[derive(diesel::QueryableByName)]
    struct Deleted {
        #[diesel(sql_type = Text)]
        name: String,
    }
    // `load`: see `targets` (a single-row read leaves the statement's end to a reset).
    let deleted: Vec<Deleted> = diesel::sql_query(COMPLETE_IN)
        .bind::<BigInt, _>(done.id)
        .bind::<Text, _>(done.worker)
        .load(conn)
        .map_err(from_diesel)?;
    let Some(Deleted { name }) = deleted.into_iter().next() else {
        return Err(not_held(done));
    };
    if let Some(value) = done.value {
        diesel::sql_query(RESULT_KEEP.as_str())
            .bind::<BigInt, _>(done.id)
            .bind::<Text, _>(name)
            .bind::<Text, _>("succeeded")
            .bind::<Nullable<Text>, _>(Some(value))
            .bind::<Nullable<Text>, _>(None::<String>)
            .execute(conn)
            .map_err(from_diesel)?;
    }
    Ok(())
}
