//! Transactional completion through the caller's own MySQL transaction: one algorithm
//! ([`complete`]) over the insert's adapters for each driver library (the `mysql` crate, sqlx,
//! diesel). The steps are migration 0015's: the worker's registration locked for share (so
//! that it is not declared dead before the commit); the job's row locked, and deleted only
//! while that worker holds it, its result kept first; then a step's finish (0020's
//! procedure). A row not held is [`Error::NotHeld`]: the caller's transaction must not commit
//! (`perform` returns the error, and the driver rolls back as the transaction is dropped). The
//! `CompleteTarget` impls (in `complete`, the layer above) call these.

use super::insert::{Execute, Mysql};
use super::sql::{COMPLETE_HELD, COMPLETE_RESULT, COMPLETE_WORKER, DELETE_HELD};
use super::workflow::FINISH;
use crate::error::{Error, Result};
use crate::store::{Completion, Value};

/// The completion's statements through `exec`: false, having written nothing, if the worker
/// no longer holds the row.
async fn complete<E: Execute>(exec: &mut E, done: &Completion<'_>) -> Result<bool, E::Error> {
    let (id, worker) = (Value::Id(done.id), Value::Text(Some(done.worker)));
    if exec.first(COMPLETE_WORKER, &[worker]).await?.is_none() {
        return Ok(false);
    }
    let Some((_, step)) = exec.first(COMPLETE_HELD, &[id, worker]).await? else {
        return Ok(false);
    };
    if let Some(value) = done.value {
        let values = [Value::Text(Some(value)), id, worker];
        exec.run(COMPLETE_RESULT.as_str(), &values).await?;
    }
    exec.run(DELETE_HELD, &[id, worker]).await?;
    if step != 0 {
        exec.run(FINISH, &[id, Value::Bool(true)]).await?;
    }
    Ok(true)
}

/// [`complete`]'s answer as dj's: a row not held refused.
fn held<E>(
    done: &Completion<'_>,
    sent: Result<bool, E>,
    error: impl FnOnce(E) -> Error,
) -> Result<()> {
    match sent {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotHeld {
            id: done.id,
            worker: done.worker.to_owned(),
        }),
        Err(e) => Err(error(e)),
    }
}

/// Through a `mysql` crate transaction.
pub(crate) fn complete_mysql(tx: &mut mysql::Transaction<'_>, done: &Completion<'_>) -> Result<()> {
    let sent = crate::store::blocking(complete(&mut Mysql(tx), done));
    held(done, sent, |e| {
        super::connect::typed_error(e, "the caller's MySQL transaction")
    })
}

/// Through a sqlx connection (that of the caller's transaction).
#[cfg(feature = "sqlx-mysql")]
pub(crate) async fn complete_sqlx(
    conn: &mut sqlx::MySqlConnection,
    done: &Completion<'_>,
) -> Result<()> {
    let sent = complete(&mut super::insert::Sqlx(conn), done).await;
    held(done, sent, crate::error::from_sqlx)
}

/// Through a diesel connection, inside the diesel transaction open on it.
#[cfg(feature = "diesel-mysql")]
pub(crate) fn complete_diesel(
    conn: &mut diesel::MysqlConnection,
    done: &Completion<'_>,
) -> Result<()> {
    let sent = crate::store::blocking(complete(&mut super::insert::Diesel(conn), done));
    held(done, sent, crate::error::from_diesel)
}
