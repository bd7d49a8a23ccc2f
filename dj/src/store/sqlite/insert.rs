//! The insert, one algorithm for every driver library. A row becomes its statements once
//! ([`RowValues`]: the values in `INSERT_ROW`'s order, bound by every library alike); a unique
//! row first runs `UNIQUE_HOLDER`, and the insert follows only if no live row holds its key.
//! Whether the statements need a transaction is decided once ([`atomic`]); a library's
//! adapter ([`Execute`]) only runs one statement, and says how that library opens a
//! transaction, or a savepoint inside its caller's. The pool's connection and a caller's
//! connection or transaction go through the same adapter (see `targets` for sqlx and diesel).

use std::future::Future;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, CachedStatement, Connection, Row};

use super::sql;
use crate::model::{EnqueueOutcome, NewJob};

/// Whether inserting `rows` takes more than one statement, so that they must run in one
/// transaction (or a savepoint inside the caller's): several rows, so that a batch is all or
/// nothing, or a unique one, so that its holder's look-up and its insert see one state of the
/// table. A lone plain row is one statement, which commits as it finishes.
pub(crate) fn atomic(rows: &[NewJob]) -> bool {
    rows.len() > 1 || rows.iter().any(|row| row.unique.is_some())
}

pub(crate) use crate::store::Value;

/// One statement to run: its SQL and its values, `?1` first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Statement<'a> {
    pub(crate) sql: &'static str,
    pub(crate) values: &'a [Value<'a>],
}

/// A row's values: `INSERT_ROW`'s thirteen, then for a unique row `UNIQUE_HOLDER`'s
/// fourteenth (replace).
pub(crate) struct RowValues<'a> {
    values: [Value<'a>; 14],
    unique: bool,
}

impl<'a> RowValues<'a> {
    pub(crate) fn of(row: &'a NewJob) -> Self {
        let unique = row.unique.as_ref();
        let [name, handler, priority, queue, at, delay, max_run_time, key, limit, starts, period, unique_key, until_done] =
            crate::store::insert_values(row);
        RowValues {
            values: [
                name,
                handler,
                priority,
                queue,
                at,
                delay,
                max_run_time,
                key,
                limit,
                starts,
                period,
                unique_key,
                until_done,
                Value::Bool(unique.is_some_and(|u| u.replace)),
            ],
            unique: unique.is_some(),
        }
    }

    /// For a unique row, the look-up (and replace) of the row holding its key.
    fn holder(&self) -> Option<Statement<'_>> {
        self.unique.then(|| Statement {
            sql: sql::UNIQUE_HOLDER.as_str(),
            values: &self.values,
        })
    }

    fn insert(&self) -> Statement<'_> {
        Statement {
            sql: sql::INSERT_ROW.as_str(),
            values: &self.values[..13],
        }
    }
}

/// What a driver library does for an insert: run one statement.
pub(crate) trait Execute {
    type Error;
    /// Runs `statement` to its end, reading every row it returns (never only the first: see
    /// [`returning`]), and gives the last row's id and outcome code.
    fn run(
        &mut self,
        statement: Statement<'_>,
    ) -> impl Future<Output = Result<Option<(i64, i32)>, Self::Error>>;
    /// The error of an insert that returned no row.
    fn no_row(&self) -> Self::Error;
}

/// Inserts `rows`, one after the other, and gives their outcomes in order. The caller has
/// opened the transaction [`atomic`] asks for.
pub(crate) async fn rows<E: Execute>(
    exec: &mut E,
    rows: &[NewJob],
) -> Result<Vec<EnqueueOutcome>, E::Error> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(row_outcome(exec, &RowValues::of(row)).await?);
    }
    Ok(out)
}

/// A unique row whose key is held gives the holder's outcome; any other row is inserted.
async fn row_outcome<E: Execute>(
    exec: &mut E,
    row: &RowValues<'_>,
) -> Result<EnqueueOutcome, E::Error> {
    if let Some(holder) = row.holder() {
        if let Some((id, code)) = exec.run(holder).await? {
            return Ok(EnqueueOutcome::from_code(id, code));
        }
    }
    let (id, code) = exec.run(row.insert()).await?.ok_or_else(|| exec.no_row())?;
    Ok(EnqueueOutcome::from_code(id, code))
}

pub(crate) use crate::store::blocking;

/// Inserts rows on a rusqlite connection, the pool's or the caller's. With no transaction
/// open, statements that must be atomic get one of their own (`BEGIN IMMEDIATE`), and an `Ok`
/// means committed: the error of the statement's end and of the commit (a full disk, an I/O
/// error) is returned, never dropped. Inside the caller's transaction they get a savepoint,
/// as sqlx's and diesel's do, so that a failed batch leaves nothing there either.
pub(crate) fn rusqlite(
    conn: &Connection,
    rows: &[NewJob],
) -> rusqlite::Result<Vec<EnqueueOutcome>> {
    let insert = || blocking(self::rows(&mut Rusqlite::new(conn), rows));
    if !atomic(rows) {
        return insert();
    }
    let own = conn.is_autocommit();
    let (begin, commit) = if own {
        (sql::BEGIN, sql::COMMIT)
    } else {
        (sql::SAVEPOINT, sql::RELEASE)
    };
    conn.execute_batch(begin)?;
    let result = insert().and_then(|out| conn.execute_batch(commit).map(|()| out));
    if result.is_err() {
        // A failed insert, or a commit SQLite left open (a busy one): the connection goes
        // back to its owner with no transaction of ours.
        if !own {
            let _ = conn.execute_batch(sql::ROLLBACK_TO);
        } else if !conn.is_autocommit() {
            let _ = conn.execute_batch(sql::ROLLBACK);
        }
    }
    result
}

/// Inserts rows inside a write transaction of the store's own (a schedule's firing).
pub(super) fn within(
    tx: &rusqlite::Transaction<'_>,
    rows: &[NewJob],
) -> rusqlite::Result<Vec<EnqueueOutcome>> {
    blocking(self::rows(&mut Rusqlite::new(tx), rows))
}

/// The rusqlite adapter: statements prepared once per insert (from the connection's cache).
pub(crate) struct Rusqlite<'c> {
    conn: &'c Connection,
    prepared: Vec<(&'static str, CachedStatement<'c>)>,
}

impl<'c> Rusqlite<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Rusqlite {
            conn,
            prepared: Vec::with_capacity(2),
        }
    }

    fn statement(&mut self, sql: &'static str) -> rusqlite::Result<&mut CachedStatement<'c>> {
        let at = match self
            .prepared
            .iter()
            .position(|(s, _)| std::ptr::eq(*s, sql))
        {
            Some(at) => at,
            None => {
                self.prepared.push((sql, self.conn.prepare_cached(sql)?));
                self.prepared.len() - 1
            }
        };
        Ok(&mut self.prepared[at].1)
    }
}

impl Execute for Rusqlite<'_> {
    type Error = rusqlite::Error;
    fn run(
        &mut self,
        statement: Statement<'_>,
    ) -> impl Future<Output = rusqlite::Result<Option<(i64, i32)>>> {
        let read = |r: &Row<'_>| Ok((r.get(0)?, r.get(1)?));
        let ran = self.statement(statement.sql).and_then(|prepared| {
            returning(prepared, params_from_iter(statement.values), read).map(|mut rows| rows.pop())
        });
        std::future::ready(ran)
    }
    fn no_row(&self) -> rusqlite::Error {
        rusqlite::Error::QueryReturnedNoRows
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Value::Text(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Int(Some(n)) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(n.into())),
            Value::Real(Some(x)) => ToSqlOutput::Owned(rusqlite::types::Value::Real(x)),
            Value::Bool(b) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(b.into())),
            Value::Id(id) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(id)),
            Value::Text(None) | Value::Int(None) | Value::Real(None) => {
                ToSqlOutput::Owned(rusqlite::types::Value::Null)
            }
        })
    }
}

/// Runs a writing statement with a `RETURNING` clause to its end and reads every row it
/// returns. Reading only the first row (rusqlite's `query_row`) leaves the statement to be
/// finished by its reset, whose error rusqlite drops: in autocommit the reset is the commit,
/// so a commit that failed on a full disk returned the id of a row that was never stored.
pub(super) fn returning<T>(
    statement: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    statement.query_map(params, read)?.collect()
}
