//! Transactional completion through the caller's own MySQL transaction, one adapter per driver
//! library (the `mysql` crate, sqlx, diesel): each sends the same statements, migration 0015's steps
//! (the worker's registration locked for share, so that it is not declared dead before the
//! commit; the job's row locked and deleted only while that worker holds it; a recorded result
//! kept), and a step's finish (0020's procedure) after them. A row not held is
//! [`Error::NotHeld`]: the caller's transaction must not commit (`perform` returns the error,
//! and the driver rolls back as the transaction is dropped). The `CompleteTarget` impls (in
//! `complete`, the layer above) call these.

use super::sql::{DELETE_HELD, HELD_NAME, RESULT_KEEP, WORKER_ALIVE};
use super::workflow::FINISH;
use crate::error::{Error, Result};
use crate::store::Completion;

/// The refusal, when the worker no longer holds the row.
fn not_held(done: &Completion<'_>) -> Error {
    Error::NotHeld {
        id: done.id,
        worker: done.worker.to_owned(),
    }
}

/// Through a `mysql` crate transaction.
pub(crate) fn complete_mysql(tx: &mut mysql::Transaction<'_>, done: &Completion<'_>) -> Result<()> {
    use mysql::prelude::Queryable;
    let sent = (|| -> mysql::Result<bool> {
        if tx
            .exec_first::<i64, _, _>(WORKER_ALIVE, (done.worker,))?
            .is_none()
        {
            return Ok(false);
        }
        let held: Option<(String, bool)> = tx.exec_first(HELD_NAME, (done.id, done.worker))?;
        let Some((name, step)) = held else {
            return Ok(false);
        };
        tx.exec_drop(DELETE_HELD, (done.id, done.worker))?;
        if let Some(value) = done.value {
            let values = (done.id, name, "succeeded", value, None::<String>);
            tx.exec_drop(RESULT_KEEP.as_str(), values)?;
        }
        if step {
            tx.exec_drop(FINISH, (done.id, true))?;
        }
        Ok(true)
    })();
    match sent {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_held(done)),
        Err(e) => Err(super::connect::typed_error(
            e,
            "the caller's MySQL transaction",
        )),
    }
}

/// Through a sqlx connection (that of the caller's transaction).
#[cfg(feature = "sqlx-mysql")]
pub(crate) async fn complete_sqlx(
    conn: &mut sqlx::MySqlConnection,
    done: &Completion<'_>,
) -> Result<()> {
    use crate::error::from_sqlx;
    use sqlx::Row as _;
    let alive = sqlx::query(WORKER_ALIVE)
        .bind(done.worker)
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    if alive.is_none() {
        return Err(not_held(done));
    }
    let held = sqlx::query(HELD_NAME)
        .bind(done.id)
        .bind(done.worker)
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    let Some(held) = held else {
        return Err(not_held(done));
    };
    // The column's collation is binary (utf8mb4_bin), which sqlx types as VARBINARY.
    let name: Vec<u8> = held.try_get(0).map_err(from_sqlx)?;
    let name = String::from_utf8_lossy(&name).into_owned();
    let step: bool = held.try_get(1).map_err(from_sqlx)?;
    sqlx::query(DELETE_HELD)
        .bind(done.id)
        .bind(done.worker)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
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
    if step {
        sqlx::query(FINISH)
            .bind(done.id)
            .bind(true)
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    }
    Ok(())
}

/// Through a diesel connection, inside the diesel transaction open on it.
#[cfg(feature = "diesel-mysql")]
pub(crate) fn complete_diesel(
    conn: &mut diesel::MysqlConnection,
    done: &Completion<'_>,
) -> Result<()> {
    use crate::error::from_diesel;
    use diesel::sql_types::{BigInt, Bool, Nullable, Text};
    use diesel::RunQueryDsl as _;

    #[derive(diesel::QueryableByName)]
    struct Held {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Bool)]
        step: bool,
    }
    #[derive(diesel::QueryableByName)]
    struct Alive {
        #[diesel(sql_type = BigInt)]
        #[allow(dead_code)] // read to know that the row is there
        alive: i64,
    }
    let alive: Vec<Alive> = diesel::sql_query(WORKER_ALIVE)
        .bind::<Text, _>(done.worker)
        .load(conn)
        .map_err(from_diesel)?;
    if alive.is_empty() {
        return Err(not_held(done));
    }
    let held: Vec<Held> = diesel::sql_query(HELD_NAME)
        .bind::<BigInt, _>(done.id)
        .bind::<Text, _>(done.worker)
        .load(conn)
        .map_err(from_diesel)?;
    let Some(Held { name, step }) = held.into_iter().next() else {
        return Err(not_held(done));
    };
    diesel::sql_query(DELETE_HELD)
        .bind::<BigInt, _>(done.id)
        .bind::<Text, _>(done.worker)
        .execute(conn)
        .map_err(from_diesel)?;
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
    if step {
        diesel::sql_query(FINISH)
            .bind::<BigInt, _>(done.id)
            .bind::<Bool, _>(true)
            .execute(conn)
            .map_err(from_diesel)?;
    }
    Ok(())
}
