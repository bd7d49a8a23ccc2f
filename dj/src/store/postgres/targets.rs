//! The insert's adapters, one per driver library: each only sends an [`InsertStep`] and opens
//! a transaction (a savepoint inside the caller's). dj's pooled [`Session`] is one of them;
//! the others are the caller's own connections and transactions, which `enqueue` and
//! `enqueue_async` accept as targets. The plan and the all-or-none rule are
//! [`super::insert`]'s, the same for all.

use tokio_postgres::types::{ToSql, Type};

use super::connect::missing_table;
use super::insert::{self, Atomic, Bind, Commit, Executor, InsertStep, Shape};
use super::pool::{Session, Sql, Tx};
use crate::error::Result;
use crate::model::{EnqueueOutcome, JobId, NewJob};

/// What the caller's connection is called in errors.
const CALLER: &str = "the caller's connection";

/// A step's values as tokio-postgres (and sync `postgres`) parameters, with their types.
fn params<'b>(step: &InsertStep<'_>, binds: &'b [Bind<'_>]) -> Vec<(&'b (dyn ToSql + Sync), Type)> {
    binds
        .iter()
        .map(|bind| param(bind, step.scalars()))
        .collect()
}

/// One value: its array, or its first element for a scalar statement.
fn param<'b>(bind: &'b Bind<'_>, scalar: bool) -> (&'b (dyn ToSql + Sync), Type) {
    match (bind, scalar) {
        (Bind::Text(v), true) => (&v[0], Type::TEXT),
        (Bind::NullText(v), true) => (&v[0], Type::TEXT),
        (Bind::Int(v), true) => (&v[0], Type::INT4),
        (Bind::NullInt(v), true) => (&v[0], Type::INT4),
        (Bind::Float(v), true) => (&v[0], Type::FLOAT8),
        (Bind::NullFloat(v), true) => (&v[0], Type::FLOAT8),
        (Bind::Text(v), false) => (v, Type::TEXT_ARRAY),
        (Bind::NullText(v), false) => (v, Type::TEXT_ARRAY),
        (Bind::Int(v), false) => (v, Type::INT4_ARRAY),
        (Bind::NullInt(v), false) => (v, Type::INT4_ARRAY),
        (Bind::Float(v), false) => (v, Type::FLOAT8_ARRAY),
        (Bind::NullFloat(v), false) => (v, Type::FLOAT8_ARRAY),
        (Bind::Bools(v), _) => (v, Type::BOOL_ARRAY),
        (Bind::Flag(b), _) => (b, Type::BOOL),
    }
}

/// [`params`] as the pool's session takes them: values and types apart.
fn values_and_types<'b>(
    step: &InsertStep<'_>,
    binds: &'b [Bind<'_>],
) -> (Vec<&'b (dyn ToSql + Sync)>, Vec<Type>) {
    params(step, binds).into_iter().unzip()
}

/// Each returned row's `(id, outcome code)`.
fn outcomes(rows: Vec<tokio_postgres::Row>) -> Vec<(JobId, i32)> {
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

/// dj's pooled session: a lone statement is prepared once per connection (or unnamed behind
/// a transaction pooler); several go unnamed in a transaction.
impl Executor for &mut Session {
    type Error = tokio_postgres::Error;
    async fn query(&mut self, step: &InsertStep<'_>) -> PgResult<Vec<(JobId, i32)>> {
        let binds = step.binds();
        let (values, types) = values_and_types(step, &binds);
        let rows = Session::query(self, Sql::Fixed(step.sql()), &types, &values).await?;
        Ok(outcomes(rows))
    }
}

impl Executor for Tx<'_> {
    type Error = tokio_postgres::Error;
    async fn query(&mut self, step: &InsertStep<'_>) -> PgResult<Vec<(JobId, i32)>> {
        let binds = step.binds();
        let (values, types) = values_and_types(step, &binds);
        let rows = Tx::query(self, Sql::Unnamed(step.sql()), &types, &values).await?;
        Ok(outcomes(rows))
    }
}

impl<'s> Atomic for &'s mut Session {
    const SHAPE: Shape = Shape::BATCHED;
    type Tx = Tx<'s>;
    async fn begin(self) -> PgResult<Tx<'s>> {
        self.transaction().await
    }
}

impl Commit for Tx<'_> {
    type Error = tokio_postgres::Error;
    async fn commit(self) -> PgResult<()> {
        Tx::commit(self).await
    }
}

/// The caller's sync `postgres` client or transaction, unprepared: one round trip per
/// statement, nothing left prepared on it.
struct SyncClient<'c, C>(&'c mut C);

fn sync_query(
    client: &mut impl postgres::GenericClient,
    step: &InsertStep<'_>,
) -> PgResult<Vec<(JobId, i32)>> {
    let binds = step.binds();
    Ok(outcomes(
        client.query_typed(step.sql(), &params(step, &binds))?,
    ))
}

impl<C: postgres::GenericClient> Executor for SyncClient<'_, C> {
    type Error = tokio_postgres::Error;
    async fn query(&mut self, step: &InsertStep<'_>) -> PgResult<Vec<(JobId, i32)>> {
        sync_query(self.0, step)
    }
}

impl<'c, C: postgres::GenericClient> Atomic for SyncClient<'c, C> {
    const SHAPE: Shape = Shape::BATCHED;
    type Tx = postgres::Transaction<'c>;
    async fn begin(self) -> PgResult<postgres::Transaction<'c>> {
        self.0.transaction()
    }
}

impl Executor for postgres::Transaction<'_> {
    type Error = tokio_postgres::Error;
    async fn query(&mut self, step: &InsertStep<'_>) -> PgResult<Vec<(JobId, i32)>> {
        sync_query(self, step)
    }
}

impl Commit for postgres::Transaction<'_> {
    type Error = tokio_postgres::Error;
    async fn commit(self) -> PgResult<()> {
        postgres::Transaction::commit(self)
    }
}

/// Inserts rows through the caller's own `postgres` client or transaction.
pub(crate) fn insert_jobs(
    client: &mut impl postgres::GenericClient,
    rows: &[NewJob],
) -> Result<Vec<EnqueueOutcome>> {
    insert::blocking(insert::insert(SyncClient(client), rows)).map_err(|e| missing_table(e, CALLER))
}

#[cfg(feature = "tokio-postgres")]
pub(crate) use tokio_pg::insert_tokio_postgres;

#[cfg(feature = "tokio-postgres")]
mod tokio_pg {
    use super::*;

    /// A caller's `tokio_postgres` client or transaction, which dj holds by shared reference
    /// (so it cannot call the library's `transaction()`): it opens its own transaction, or a
    /// savepoint inside the caller's, with plain statements.
    pub(crate) trait Client: tokio_postgres::GenericClient + Sync {
        /// `BEGIN`, `COMMIT`, `ROLLBACK`, or their savepoint forms.
        const NEST: [&'static str; 3];
    }
    impl Client for tokio_postgres::Client {
        const NEST: [&'static str; 3] = ["BEGIN", "COMMIT", "ROLLBACK"];
    }
    impl Client for tokio_postgres::Transaction<'_> {
        const NEST: [&'static str; 3] = [
            "SAVEPOINT dj_insert",
            "RELEASE SAVEPOINT dj_insert",
            "ROLLBACK TO SAVEPOINT dj_insert",
        ];
    }

    struct TokioPg<'c, C: Client> {
        client: &'c C,
        /// An open transaction (or savepoint) that a drop must roll back.
        open: bool,
    }

    impl<C: Client> Executor for TokioPg<'_, C> {
        type Error = tokio_postgres::Error;
        async fn query(&mut self, step: &InsertStep<'_>) -> PgResult<Vec<(JobId, i32)>> {
            let binds = step.binds();
            let params = params(step, &binds);
            Ok(outcomes(
                self.client.query_typed(step.sql(), &params).await?,
            ))
        }
    }

    impl<'c, C: Client> Atomic for TokioPg<'c, C> {
        const SHAPE: Shape = Shape {
            batch: usize::MAX,
            scalars: true,
        };
        type Tx = TokioPg<'c, C>;
        async fn begin(self) -> PgResult<TokioPg<'c, C>> {
            self.client.batch_execute(C::NEST[0]).await?;
            Ok(TokioPg {
                client: self.client,
                open: true,
            })
        }
    }

    impl<C: Client> Commit for TokioPg<'_, C> {
        type Error = tokio_postgres::Error;
        async fn commit(mut self) -> PgResult<()> {
            self.open = false;
            self.client.batch_execute(C::NEST[1]).await
        }
    }

    impl<C: Client> Drop for TokioPg<'_, C> {
        /// Sends the rollback without waiting for its answer, as the library's own
        /// `Transaction` does when dropped: the first poll queues it on the connection.
        fn drop(&mut self) {
            if self.open {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let rollback = std::pin::pin!(self.client.batch_execute(C::NEST[2]));
                let _ = std::future::Future::poll(rollback, &mut cx);
            }
        }
    }

    /// Inserts rows through the caller's `tokio_postgres` client or transaction, all or none.
    pub(crate) async fn insert_tokio_postgres<C: Client>(
        client: &C,
        rows: &[NewJob],
    ) -> Result<Vec<EnqueueOutcome>> {
        let exec = TokioPg {
            client,
            open: false,
        };
        insert::insert(exec, rows)
            .await
            .map_err(|e| missing_table(e, CALLER))
    }
}

#[cfg(feature = "sqlx-postgres")]
pub(crate) use sqlx_pg::insert_sqlx;

#[cfg(feature = "sqlx-postgres")]
mod sqlx_pg {
    use super::*;
    use sqlx::{PgConnection, Postgres};

    /// The caller's sqlx connection (or its transaction's); arrays even for one row.
    struct Sqlx<'c>(&'c mut PgConnection);
    /// A transaction (a savepoint inside the caller's) that sqlx rolls back when dropped.
    struct SqlxTx<'c>(sqlx::Transaction<'c, Postgres>);

    async fn query(
        conn: &mut PgConnection,
        step: &InsertStep<'_>,
    ) -> sqlx::Result<Vec<(i64, i32)>> {
        let binds = step.binds();
        let mut query = sqlx::query_as::<_, (i64, i32)>(step.sql());
        for bind in binds {
            query = match bind {
                Bind::Text(v) => query.bind(v),
                Bind::NullText(v) => query.bind(v),
                Bind::Int(v) => query.bind(v),
                Bind::NullInt(v) => query.bind(v),
                Bind::Float(v) => query.bind(v),
                Bind::NullFloat(v) => query.bind(v),
                Bind::Bools(v) => query.bind(v),
                Bind::Flag(b) => query.bind(b),
            };
        }
        query.fetch_all(conn).await
    }

    impl Executor for Sqlx<'_> {
        type Error = sqlx::Error;
        async fn query(&mut self, step: &InsertStep<'_>) -> sqlx::Result<Vec<(JobId, i32)>> {
            query(self.0, step).await
        }
    }

    impl Executor for SqlxTx<'_> {
        type Error = sqlx::Error;
        async fn query(&mut self, step: &InsertStep<'_>) -> sqlx::Result<Vec<(JobId, i32)>> {
            query(&mut self.0, step).await
        }
    }

    impl<'c> Atomic for Sqlx<'c> {
        const SHAPE: Shape = Shape {
            batch: usize::MAX,
            scalars: false,
        };
        type Tx = SqlxTx<'c>;
        async fn begin(self) -> sqlx::Result<SqlxTx<'c>> {
            Ok(SqlxTx(sqlx::Connection::begin(self.0).await?))
        }
    }

    impl Commit for SqlxTx<'_> {
        type Error = sqlx::Error;
        async fn commit(self) -> sqlx::Result<()> {
            self.0.commit().await
        }
    }

    /// Inserts rows through the caller's sqlx connection (or its transaction's connection).
    pub(crate) async fn insert_sqlx(
        conn: &mut PgConnection,
        rows: &[NewJob],
    ) -> Result<Vec<EnqueueOutcome>> {
        insert::insert(Sqlx(conn), rows)
            .await
            .map_err(crate::error::from_sqlx)
    }
}

#[cfg(feature = "diesel-postgres")]
pub(crate) use diesel_pg::insert_diesel;

#[cfg(feature = "diesel-postgres")]
mod diesel_pg {
    use super::*;
    use diesel::connection::TransactionManager as _;
    use diesel::pg::sql_types::Array;
    use diesel::pg::Pg;
    use diesel::sql_types::{Bool, Double, Integer, Nullable, Text};
    use diesel::{PgConnection, RunQueryDsl as _};

    type Manager = <PgConnection as diesel::Connection>::TransactionManager;
    type DieselResult<T> = diesel::QueryResult<T>;

    /// The caller's diesel connection, inside whatever diesel transaction is open on it;
    /// arrays even for one row.
    struct Diesel<'c>(&'c mut PgConnection);
    /// A transaction (a savepoint inside the caller's) of dj's own, rolled back if dropped
    /// before its commit.
    struct DieselTx<'c> {
        conn: &'c mut PgConnection,
        open: bool,
    }

    fn query(conn: &mut PgConnection, step: &InsertStep<'_>) -> DieselResult<Vec<(JobId, i32)>> {
        let binds = step.binds();
        let mut query = diesel::sql_query(step.sql()).into_boxed::<Pg>();
        for bind in binds {
            query = match bind {
                Bind::Text(v) => query.bind::<Array<Text>, _>(v),
                Bind::NullText(v) => query.bind::<Array<Nullable<Text>>, _>(v),
                Bind::Int(v) => query.bind::<Array<Integer>, _>(v),
                Bind::NullInt(v) => query.bind::<Array<Nullable<Integer>>, _>(v),
                Bind::Float(v) => query.bind::<Array<Double>, _>(v),
                Bind::NullFloat(v) => query.bind::<Array<Nullable<Double>>, _>(v),
                Bind::Bools(v) => query.bind::<Array<Bool>, _>(v),
                Bind::Flag(b) => query.bind::<Bool, _>(b),
            };
        }
        let rows = query.load::<crate::store::InsertedId>(conn)?;
        Ok(rows.into_iter().map(|r| (r.id, r.outcome)).collect())
    }

    impl Executor for Diesel<'_> {
        type Error = diesel::result::Error;
        async fn query(&mut self, step: &InsertStep<'_>) -> DieselResult<Vec<(JobId, i32)>> {
            query(self.0, step)
        }
    }

    impl Executor for DieselTx<'_> {
        type Error = diesel::result::Error;
        async fn query(&mut self, step: &InsertStep<'_>) -> DieselResult<Vec<(JobId, i32)>> {
            query(self.conn, step)
        }
    }

    impl<'c> Atomic for Diesel<'c> {
        const SHAPE: Shape = Shape {
            batch: usize::MAX,
            scalars: false,
        };
        type Tx = DieselTx<'c>;
        async fn begin(self) -> DieselResult<DieselTx<'c>> {
            Manager::begin_transaction(self.0)?;
            Ok(DieselTx {
                conn: self.0,
                open: true,
            })
        }
    }

    impl Commit for DieselTx<'_> {
        type Error = diesel::result::Error;
        async fn commit(mut self) -> DieselResult<()> {
            self.open = false;
            Manager::commit_transaction(self.conn)
        }
    }

    impl Drop for DieselTx<'_> {
        fn drop(&mut self) {
            if self.open {
                let _ = Manager::rollback_transaction(self.conn);
            }
        }
    }

    /// Inserts rows through the caller's diesel connection.
    pub(crate) fn insert_diesel(
        conn: &mut PgConnection,
        rows: &[NewJob],
    ) -> Result<Vec<EnqueueOutcome>> {
        insert::blocking(insert::insert(Diesel(conn), rows)).map_err(crate::error::from_diesel)
    }
}
