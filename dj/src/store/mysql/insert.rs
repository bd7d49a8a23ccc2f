//! The insert, one algorithm for every driver library (the `mysql` crate, which the pool uses
//! too, sqlx's MySQL and diesel's). A row is one `INSERT`, its id the connection's last insert id. A
//! unique row's insert meets the unique index when a live row holds its key (MySQL has no
//! partial index and no `ON CONFLICT ... WHERE`): the holder is then read, locked, and
//! replaced if the row asks for it and the holder still waits. Several rows, or a unique one,
//! run in one transaction, or in a savepoint inside the caller's. A library's adapter
//! ([`Execute`]) only runs one statement.

use std::future::Future;

use mysql::prelude::Queryable;
use mysql::TxOpts;

use super::connect::is_duplicate;
use super::sql;
use crate::model::{EnqueueOutcome, NewJob};

/// How often a unique row is tried when its holder goes away between the insert that met it
/// and the look-up (the holder finished in between): each time the key was free again.
const UNIQUE_TRIES: usize = 5;

/// The most rows one multi-row `INSERT` carries (13 values each, far below MySQL's 65,535
/// placeholders and a default `max_allowed_packet` for payloads of a few kB).
const ROWS_PER_INSERT: usize = 500;

/// Whether inserting `rows` takes more than one statement (see the SQLite backend's).
pub(crate) fn atomic(rows: &[NewJob]) -> bool {
    rows.len() > 1 || rows.iter().any(|row| row.unique.is_some())
}

use crate::store::{insert_values, Value};

/// What a driver library does for an insert.
pub(crate) trait Execute {
    type Error;
    /// Runs an `INSERT`: the (first) new row's id, or `None` when it met a unique index.
    fn insert(
        &mut self,
        sql: &str,
        values: &[Value<'_>],
    ) -> impl Future<Output = Result<Option<i64>, Self::Error>>;
    /// Runs a query giving the first row's two integers, if any (named `a` and `b`, which
    /// diesel reads them by).
    fn first(
        &mut self,
        sql: &'static str,
        values: &[Value<'_>],
    ) -> impl Future<Output = Result<Option<(i64, i64)>, Self::Error>>;
    /// Runs a statement that returns no rows.
    fn run(
        &mut self,
        sql: &'static str,
        values: &[Value<'_>],
    ) -> impl Future<Output = Result<(), Self::Error>>;
    /// The step between the ids of one multi-row insert's rows, if they are consecutive
    /// (`sql::ID_NUMBERING`: lock mode 0 or 1); `None` under lock mode 2.
    fn id_step(&mut self) -> impl Future<Output = Result<Option<i64>, Self::Error>> {
        async move {
            let numbering = self.first(sql::ID_NUMBERING, &[]).await?;
            Ok(numbering.and_then(|(mode, step)| (mode <= 1).then_some(step)))
        }
    }
}

/// Inserts `rows` in order, inside whatever transaction [`atomic`] asks for. Where the
/// server numbers a multi-row insert's rows consecutively, runs of rows without a unique key
/// go in one statement per [`ROWS_PER_INSERT`], their ids counted from the first.
pub(crate) async fn rows<E: Execute>(
    exec: &mut E,
    rows: &[NewJob],
) -> Result<Vec<EnqueueOutcome>, E::Error> {
    let mut out = Vec::with_capacity(rows.len());
    let step = if rows.len() > 1 {
        exec.id_step().await?
    } else {
        None
    };
    let mut rest = rows;
    while let Some(row) = rest.first() {
        let run = rest
            .iter()
            .take(ROWS_PER_INSERT)
            .take_while(|r| r.unique.is_none())
            .count();
        match step {
            Some(step) if run > 1 => {
                let values: Vec<Value<'_>> = rest[..run].iter().flat_map(insert_values).collect();
                let first = exec.insert(&sql::insert_rows(run), &values).await?;
                let first = first.unwrap_or_else(|| {
                    unreachable!("rows without a unique key met a unique index")
                });
                out.extend((0..run as i64).map(|i| EnqueueOutcome::Inserted(first + i * step)));
                rest = &rest[run..];
            }
            _ => {
                out.push(row_outcome(exec, row).await?);
                rest = &rest[1..];
            }
        }
    }
    Ok(out)
}

async fn row_outcome<E: Execute>(exec: &mut E, row: &NewJob) -> Result<EnqueueOutcome, E::Error> {
    let values = insert_values(row);
    let Some(unique) = &row.unique else {
        return match exec.insert(sql::INSERT_ROW.as_str(), &values).await? {
            Some(id) => Ok(EnqueueOutcome::Inserted(id)),
            // No unique index applies to a row without a key.
            None => unreachable!("a row without a unique key met a unique index"),
        };
    };
    let mut tries = 0;
    loop {
        if let Some(id) = exec.insert(sql::INSERT_ROW.as_str(), &values).await? {
            return Ok(EnqueueOutcome::Inserted(id));
        }
        let key = [Value::Text(Some(&unique.key))];
        let holder = if unique.replace {
            sql::UNIQUE_HOLDER_LOCKED
        } else {
            sql::UNIQUE_HOLDER
        };
        let Some((id, waiting)) = exec.first(holder, &key).await? else {
            // The holder finished between the insert and the look-up: the key is free.
            tries += 1;
            if tries < UNIQUE_TRIES {
                continue;
            }
            return Ok(EnqueueOutcome::Duplicate(0));
        };
        if !(unique.replace && waiting != 0) {
            return Ok(EnqueueOutcome::Duplicate(id));
        }
        // handler .. rate period (the insert's second to eleventh), then the key.
        let mut replace: Vec<Value<'_>> = values[1..11].to_vec();
        replace.push(values[11]);
        exec.run(sql::UNIQUE_REPLACE.as_str(), &replace).await?;
        return Ok(EnqueueOutcome::Replaced(id));
    }
}

/// Inserts rows on a `mysql` connection with no transaction open (the pool's, or the
/// caller's `Conn`): statements that must be atomic get a transaction of their own, and `Ok`
/// means committed.
pub(crate) fn on_conn(
    conn: &mut mysql::Conn,
    rows: &[NewJob],
) -> mysql::Result<Vec<EnqueueOutcome>> {
    if !atomic(rows) {
        return crate::store::blocking(self::rows(&mut Mysql(conn), rows));
    }
    let mut tx = conn.start_transaction(TxOpts::default())?;
    let out = crate::store::blocking(self::rows(&mut Mysql(&mut tx), rows))?;
    tx.commit()?;
    Ok(out)
}

/// Inserts rows inside a transaction: the store's own (a schedule's firing), as they are.
pub(super) fn within(
    tx: &mut mysql::Transaction<'_>,
    rows: &[NewJob],
) -> mysql::Result<Vec<EnqueueOutcome>> {
    crate::store::blocking(self::rows(&mut Mysql(tx), rows))
}

/// Inserts rows inside the caller's `mysql` transaction, in a savepoint, so that a failed
/// batch leaves nothing there and the caller's transaction goes on; the rows exist only if
/// the caller commits.
pub(crate) fn in_callers(
    tx: &mut mysql::Transaction<'_>,
    rows: &[NewJob],
) -> mysql::Result<Vec<EnqueueOutcome>> {
    if !atomic(rows) {
        return within(tx, rows);
    }
    tx.query_drop(sql::SAVEPOINT)?;
    match within(tx, rows) {
        Ok(out) => {
            tx.query_drop(sql::RELEASE)?;
            Ok(out)
        }
        Err(e) => {
            let _ = tx.query_drop(sql::ROLLBACK_TO);
            Err(e)
        }
    }
}

/// The `mysql` crate's adapter: prepared statements (cached by the connection).
pub(super) struct Mysql<'c, Q>(pub(super) &'c mut Q);

impl<Q: Queryable> Execute for Mysql<'_, Q> {
    type Error = mysql::Error;
    fn insert(
        &mut self,
        sql: &str,
        values: &[Value<'_>],
    ) -> impl Future<Output = mysql::Result<Option<i64>>> {
        let ran = match self.0.exec_iter(sql, params(values)) {
            Ok(result) => Ok(result.last_insert_id().map(|id| id as i64)),
            Err(e) if is_duplicate(&e) => Ok(None),
            Err(e) => Err(e),
        };
        std::future::ready(ran)
    }
    fn first(
        &mut self,
        sql: &'static str,
        values: &[Value<'_>],
    ) -> impl Future<Output = mysql::Result<Option<(i64, i64)>>> {
        std::future::ready(self.0.exec_first(sql, params(values)))
    }
    fn run(
        &mut self,
        sql: &'static str,
        values: &[Value<'_>],
    ) -> impl Future<Output = mysql::Result<()>> {
        std::future::ready(self.0.exec_drop(sql, params(values)))
    }
}

fn params(values: &[Value<'_>]) -> Vec<mysql::Value> {
    (values.iter())
        .map(|v| match *v {
            Value::Text(t) => mysql::Value::from(t),
            Value::Int(n) => mysql::Value::from(n),
            Value::Real(x) => mysql::Value::from(x),
            Value::Bool(b) => mysql::Value::from(b),
            Value::Id(id) => mysql::Value::from(id),
        })
        .collect()
}

#[cfg(feature = "sqlx-mysql")]
pub(crate) use self::sqlx_target::{insert_sqlx, Sqlx};

#[cfg(feature = "sqlx-mysql")]
mod sqlx_target {
    use super::*;

    /// Inserts rows through the caller's sqlx connection (or the connection of its
    /// transaction); atomic statements in one transaction of their own, or a savepoint inside
    /// the caller's (sqlx's `begin` opens whichever fits).
    pub(crate) async fn insert_sqlx(
        conn: &mut sqlx::MySqlConnection,
        rows: &[NewJob],
    ) -> crate::error::Result<Vec<EnqueueOutcome>> {
        use sqlx::Connection as _;
        let inserted = if atomic(rows) {
            let mut tx = conn.begin().await.map_err(crate::error::from_sqlx)?;
            match self::rows(&mut Sqlx(&mut tx), rows).await {
                Ok(out) => tx.commit().await.map(|()| out),
                Err(e) => Err(e),
            }
        } else {
            self::rows(&mut Sqlx(conn), rows).await
        };
        inserted.map_err(crate::error::from_sqlx)
    }

    /// sqlx's adapter.
    pub(crate) struct Sqlx<'c>(pub(crate) &'c mut sqlx::MySqlConnection);

    fn bound<'q>(
        sql: &'q str,
        values: &[Value<'q>],
    ) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
        let mut query = sqlx::query(sql);
        for value in values {
            query = match *value {
                Value::Text(t) => query.bind(t),
                Value::Int(n) => query.bind(n),
                Value::Real(x) => query.bind(x),
                Value::Bool(b) => query.bind(b),
                Value::Id(id) => query.bind(id),
            };
        }
        query
    }

    impl Execute for Sqlx<'_> {
        type Error = sqlx::Error;
        async fn insert(&mut self, sql: &str, values: &[Value<'_>]) -> sqlx::Result<Option<i64>> {
            match bound(sql, values).execute(&mut *self.0).await {
                Ok(done) => Ok(Some(done.last_insert_id() as i64)),
                // ER_DUP_ENTRY (SQLSTATE 23000 covers other constraints too).
                Err(sqlx::Error::Database(db))
                    if db
                        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                        .is_some_and(|e| e.number() == 1062) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        }
        async fn first(
            &mut self,
            sql: &'static str,
            values: &[Value<'_>],
        ) -> sqlx::Result<Option<(i64, i64)>> {
            use sqlx::Row as _;
            let row = bound(sql, values).fetch_optional(&mut *self.0).await?;
            row.map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?)))
                .transpose()
        }
        async fn run(&mut self, sql: &'static str, values: &[Value<'_>]) -> sqlx::Result<()> {
            bound(sql, values).execute(&mut *self.0).await.map(drop)
        }
    }
}

#[cfg(feature = "diesel-mysql")]
pub(crate) use self::diesel_target::{insert_diesel, Diesel};

#[cfg(feature = "diesel-mysql")]
mod diesel_target {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error as DieselError};
    use diesel::sql_types::{BigInt, Bool, Double, Integer, Nullable, Text};
    use diesel::RunQueryDsl as _;

    /// Inserts rows through the caller's diesel connection; atomic statements in a
    /// transaction of their own, or a savepoint inside the caller's (diesel's `transaction`
    /// opens whichever fits).
    pub(crate) fn insert_diesel(
        conn: &mut diesel::MysqlConnection,
        rows: &[NewJob],
    ) -> crate::error::Result<Vec<EnqueueOutcome>> {
        use diesel::Connection as _;
        let each = |conn: &mut diesel::MysqlConnection| {
            crate::store::blocking(self::rows(&mut Diesel(conn), rows))
        };
        let inserted = if atomic(rows) {
            conn.transaction(each)
        } else {
            each(conn)
        };
        inserted.map_err(crate::error::from_diesel)
    }

    /// diesel's adapter.
    pub(crate) struct Diesel<'c>(pub(crate) &'c mut diesel::MysqlConnection);

    #[derive(diesel::QueryableByName)]
    struct Pair {
        #[diesel(sql_type = BigInt)]
        a: i64,
        #[diesel(sql_type = BigInt)]
        b: i64,
    }

    #[derive(diesel::QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }

    fn bound<'q>(
        sql: &'q str,
        values: &[Value<'q>],
    ) -> diesel::query_builder::BoxedSqlQuery<
        'q,
        diesel::mysql::Mysql,
        diesel::query_builder::SqlQuery,
    > {
        let mut query = diesel::sql_query(sql).into_boxed::<diesel::mysql::Mysql>();
        for value in values {
            query = match *value {
                Value::Text(t) => query.bind::<Nullable<Text>, _>(t),
                Value::Int(n) => query.bind::<Nullable<Integer>, _>(n),
                Value::Real(x) => query.bind::<Nullable<Double>, _>(x),
                Value::Bool(b) => query.bind::<Bool, _>(b),
                Value::Id(id) => query.bind::<BigInt, _>(id),
            };
        }
        query
    }

    impl Execute for Diesel<'_> {
        type Error = DieselError;
        async fn insert(
            &mut self,
            sql: &str,
            values: &[Value<'_>],
        ) -> diesel::QueryResult<Option<i64>> {
            match bound(sql, values).execute(&mut *self.0) {
                Ok(_) => {
                    let id: Inserted =
                        diesel::sql_query("SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS id")
                            .get_result(&mut *self.0)?;
                    Ok(Some(id.id))
                }
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
                Err(e) => Err(e),
            }
        }
        async fn first(
            &mut self,
            sql: &'static str,
            values: &[Value<'_>],
        ) -> diesel::QueryResult<Option<(i64, i64)>> {
            let rows: Vec<Pair> = bound(sql, values).load(&mut *self.0)?;
            Ok(rows.first().map(|p| (p.a, p.b)))
        }
        async fn run(
            &mut self,
            sql: &'static str,
            values: &[Value<'_>],
        ) -> diesel::QueryResult<()> {
            bound(sql, values).execute(&mut *self.0).map(drop)
        }
    }
}
