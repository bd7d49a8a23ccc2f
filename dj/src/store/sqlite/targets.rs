//! The caller's own connection or transaction as an enqueue target, one adapter per driver
//! library: rusqlite (the adapter the pool uses too), sqlx and diesel. Each only runs the
//! insert's statements and opens its library's transaction (or savepoint inside the caller's)
//! when [`insert::atomic`] asks for one; the statements and their values come from `insert`.
//! The `EnqueueTarget` impls (in `enqueue`, the layer above) call these.

use std::path::Path;

use rusqlite::Connection;

use super::connect::typed_error;
use super::insert;
use crate::error::Result;
use crate::model::{EnqueueOutcome, NewJob};

/// Inserts rows through the caller's rusqlite connection, inside its transaction if one is
/// open (a savepoint there; the rows are then the caller's to commit); otherwise committed
/// before this returns.
pub(crate) fn insert_rusqlite(conn: &Connection, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
    let path = conn.path().filter(|p| !p.is_empty()).map(Path::new);
    let database = path.map_or_else(
        || "the caller's connection".to_owned(),
        |p| format!("sqlite:{}", p.display()),
    );
    insert::rusqlite(conn, rows).map_err(|e| typed_error(e, Some(conn), &database, path))
}

#[cfg(feature = "sqlx-sqlite")]
pub(crate) use self::sqlx_target::insert_sqlx;

#[cfg(feature = "sqlx-sqlite")]
mod sqlx_target {
    use super::*;
    use crate::store::sqlite::insert::{Execute, Statement, Value};

    /// Inserts rows through the caller's sqlx connection (or the connection of its
    /// transaction); atomic statements in one transaction of their own, or a savepoint inside
    /// the caller's (sqlx's `begin` opens whichever fits).
    pub(crate) async fn insert_sqlx(
        conn: &mut sqlx::SqliteConnection,
        rows: &[NewJob],
    ) -> Result<Vec<EnqueueOutcome>> {
        use sqlx::Connection as _;
        let inserted = if insert::atomic(rows) {
            let mut tx = conn.begin().await.map_err(crate::error::from_sqlx)?;
            match insert::rows(&mut Sqlx(&mut tx), rows).await {
                Ok(out) => tx.commit().await.map(|()| out),
                Err(e) => Err(e),
            }
        } else {
            insert::rows(&mut Sqlx(conn), rows).await
        };
        inserted.map_err(crate::error::from_sqlx)
    }

    struct Sqlx<'c>(&'c mut sqlx::SqliteConnection);

    impl Execute for Sqlx<'_> {
        type Error = sqlx::Error;
        async fn run(&mut self, statement: Statement<'_>) -> sqlx::Result<Option<(i64, i32)>> {
            let mut query = sqlx::query_as::<_, (i64, i32)>(statement.sql);
            for value in statement.values {
                query = match *value {
                    Value::Text(t) => query.bind(t),
                    Value::Int(n) => query.bind(n),
                    Value::Real(x) => query.bind(x),
                    Value::Bool(b) => query.bind(b),
                    Value::Id(id) => query.bind(id),
                };
            }
            // `fetch_all`, never `fetch_one`/`fetch_optional`: those stop sqlx's SQLite
            // worker after the first row and drop the error of the statement's end and, in
            // autocommit, of its commit (see `insert::returning`).
            Ok(query.fetch_all(&mut *self.0).await?.pop())
        }
        fn no_row(&self) -> sqlx::Error {
            sqlx::Error::RowNotFound
        }
    }
}

#[cfg(feature = "diesel-sqlite")]
pub(crate) use self::diesel_target::insert_diesel;

#[cfg(feature = "diesel-sqlite")]
mod diesel_target {
    use std::future::Future;

    use super::*;
    use crate::store::sqlite::insert::{Execute, Statement, Value};
    use crate::store::InsertedId;

    /// Inserts rows through the caller's diesel connection; atomic statements in a
    /// transaction of their own, or a savepoint inside the caller's (diesel's `transaction`
    /// opens whichever fits).
    pub(crate) fn insert_diesel(
        conn: &mut diesel::SqliteConnection,
        rows: &[NewJob],
    ) -> Result<Vec<EnqueueOutcome>> {
        use diesel::Connection as _;
        let each = |conn: &mut diesel::SqliteConnection| {
            insert::blocking(insert::rows(&mut Diesel(conn), rows))
        };
        let inserted = if insert::atomic(rows) {
            conn.transaction(each)
        } else {
            each(conn)
        };
        inserted.map_err(crate::error::from_diesel)
    }

    struct Diesel<'c>(&'c mut diesel::SqliteConnection);

    impl Execute for Diesel<'_> {
        type Error = diesel::result::Error;
        fn run(
            &mut self,
            statement: Statement<'_>,
        ) -> impl Future<Output = diesel::QueryResult<Option<(i64, i32)>>> {
            use diesel::sql_types::{Bool, Double, Integer, Nullable, Text};
            use diesel::RunQueryDsl as _;
            let mut query = diesel::sql_query(statement.sql).into_boxed::<diesel::sqlite::Sqlite>();
            for value in statement.values {
                query = match *value {
                    Value::Text(t) => query.bind::<Nullable<Text>, _>(t),
                    Value::Int(n) => query.bind::<Nullable<Integer>, _>(n),
                    Value::Real(x) => query.bind::<Nullable<Double>, _>(x),
                    Value::Bool(b) => query.bind::<Bool, _>(b),
                    Value::Id(id) => query.bind::<diesel::sql_types::BigInt, _>(id),
                };
            }
            // `load`, never `get_result`: that reads one row and leaves the statement, and in
            // autocommit its commit, to a reset whose error is dropped.
            let ran = query
                .load::<InsertedId>(self.0)
                .map(|rows| rows.last().map(|r| (r.id, r.outcome)));
            std::future::ready(ran)
        }
        fn no_row(&self) -> diesel::result::Error {
            diesel::result::Error::NotFound
        }
    }
}
