//! PostgreSQL's connection pool: bounded, with a checkout wait, usable from sync and async
//! callers alike. Each connection is driven by whoever is using it (its `Connection` future is
//! polled beside the statement, on the caller's thread or task), not by a task of its own: a
//! statement then costs the caller one wake-up from dj's I/O reactor instead of two hand-offs
//! to and from a connection task, which made a single enqueue a third slower. (Pool crates such
//! as deadpool-postgres spawn each connection onto a task, hence this one.)

use std::collections::HashMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Connection, NoTls, Row, Socket, Statement};

use crate::error::{Error, Result};

/// How a connection sends dj's statements: the URL's `pooler` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Statements {
    /// Each fixed statement prepared once per connection and reused (a direct connection, or
    /// a session pooler, which keeps one server session per client connection).
    #[default]
    Prepared,
    /// Every statement unnamed, nothing kept on the server: behind a transaction pooler
    /// (PgBouncer's `pool_mode = transaction`) each transaction may run on another server
    /// connection, where a name prepared on the last one is unknown, or is another client's.
    Unnamed,
}

/// One of dj's statements: its text, and how a direct connection sends it. Behind a
/// transaction pooler every form goes unnamed, with the parameter types given.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sql<'a> {
    /// Fixed text: prepared once per connection and cached.
    Fixed(&'static str),
    /// Text built for this call (a filtered command): prepared for this call only.
    Built(&'a str),
    /// Sent unnamed everywhere (parse, bind and execute in one round trip).
    Unnamed(&'a str),
}

type Cache = Mutex<HashMap<&'static str, Statement>>;

/// A connection's client and its prepared statements: what an operation works with. Every
/// statement goes through [`Session::query`] or [`Session::execute`] (or those of its
/// [`Tx`]), which send it as the connection's [`Statements`] says: the client itself is not
/// reachable, so no call site can prepare a named statement behind a transaction pooler.
pub(crate) struct Session {
    client: Client,
    statements: Cache,
    mode: Statements,
}

impl Session {
    /// Runs a statement; its rows.
    pub(crate) async fn query(
        &self,
        sql: Sql<'_>,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.on().query(sql, types, params).await
    }

    /// Runs a statement that returns no rows: how many rows it changed.
    pub(crate) async fn execute(
        &self,
        sql: Sql<'_>,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        self.on().execute(sql, types, params).await
    }

    /// Runs parameterless statements through the simple protocol (no statement is named).
    pub(crate) async fn batch_execute(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.client.batch_execute(sql).await
    }

    /// Opens a transaction, whose statements go the same way.
    pub(crate) async fn transaction(&mut self) -> Result<Tx<'_>, tokio_postgres::Error> {
        Ok(Tx {
            tx: self.client.transaction().await?,
            statements: &self.statements,
            mode: self.mode,
        })
    }

    /// Forgets the prepared statements (after `migrate` changed the tables they name).
    pub(crate) fn clear_statements(&mut self) {
        lock(&self.statements).clear();
    }

    fn on(&self) -> On<'_> {
        On {
            client: &self.client,
            statements: &self.statements,
            mode: self.mode,
        }
    }
}

/// A transaction open on a [`Session`]; rolled back when dropped uncommitted.
pub(crate) struct Tx<'a> {
    tx: tokio_postgres::Transaction<'a>,
    statements: &'a Cache,
    mode: Statements,
}

impl Tx<'_> {
    /// [`Session::query`], in the transaction.
    pub(crate) async fn query(
        &self,
        sql: Sql<'_>,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.on().query(sql, types, params).await
    }

    /// [`Session::execute`], in the transaction.
    pub(crate) async fn execute(
        &self,
        sql: Sql<'_>,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        self.on().execute(sql, types, params).await
    }

    /// [`Session::batch_execute`], in the transaction.
    pub(crate) async fn batch_execute(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.tx.batch_execute(sql).await
    }

    pub(crate) async fn commit(self) -> Result<(), tokio_postgres::Error> {
        self.tx.commit().await
    }

    fn on(&self) -> On<'_> {
        On {
            client: self.tx.client(),
            statements: self.statements,
            mode: self.mode,
        }
    }
}

/// The one place a statement is sent: a session's client, or its open transaction's.
struct On<'a> {
    client: &'a Client,
    statements: &'a Cache,
    mode: Statements,
}

/// How one statement is sent: the rule of [`Statements`] and [`Sql`], decided in one place.
enum Route<'a> {
    /// A prepared statement (cached on this connection, or prepared for this call).
    Prepared(Statement),
    /// Text the client prepares for this call and closes after.
    Text(&'a str),
    /// Unnamed, with the parameter types given: nothing left on the server.
    Typed(&'a str),
}

impl On<'_> {
    async fn query(
        &self,
        sql: Sql<'_>,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        match self.send(sql, types, params).await? {
            Route::Prepared(statement) => self.client.query(&statement, params).await,
            Route::Text(text) => self.client.query(text, params).await,
            Route::Typed(text) => self.client.query_typed(text, &typed(types, params)).await,
        }
    }

    async fn execute(
        &self,
        sql: Sql<'_>,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        match self.send(sql, types, params).await? {
            Route::Prepared(statement) => self.client.execute(&statement, params).await,
            Route::Text(text) => self.client.execute(text, params).await,
            Route::Typed(text) => self.client.execute_typed(text, &typed(types, params)).await,
        }
    }

    /// How `sql` goes on this connection: prepared and cached (a fixed statement on a direct
    /// connection), prepared for this call (a built one), or unnamed (behind a transaction
    /// pooler, or asked for).
    async fn send<'s>(
        &self,
        sql: Sql<'s>,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Route<'s>, tokio_postgres::Error> {
        debug_assert_eq!(
            types.len(),
            params.len(),
            "a type for each parameter: {sql:?}"
        );
        Ok(match (self.mode, sql) {
            (Statements::Prepared, Sql::Fixed(text)) => {
                Route::Prepared(self.prepare_cached(text, types).await?)
            }
            (Statements::Prepared, Sql::Built(text)) => Route::Text(text),
            (_, Sql::Fixed(text) | Sql::Built(text) | Sql::Unnamed(text)) => Route::Typed(text),
        })
    }

    /// `sql` prepared once per connection.
    async fn prepare_cached(
        &self,
        sql: &'static str,
        types: &[Type],
    ) -> Result<Statement, tokio_postgres::Error> {
        let cached = lock(self.statements).get(sql).cloned();
        if let Some(statement) = cached {
            return Ok(statement);
        }
        let statement = self.client.prepare_typed(sql, types).await?;
        lock(self.statements).insert(sql, statement.clone());
        Ok(statement)
    }
}

fn typed<'a>(
    types: &[Type],
    params: &[&'a (dyn ToSql + Sync)],
) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params.iter().copied().zip(types.iter().cloned()).collect()
}

fn lock(statements: &Cache) -> std::sync::MutexGuard<'_, HashMap<&'static str, Statement>> {
    statements.lock().unwrap_or_else(|e| e.into_inner())
}

/// A session and the connection that carries it.
pub(crate) struct PgConn {
    session: Session,
    connection: Connection<Socket, NoTlsStream>,
    /// The connection future has ended: the server closed it, or it failed.
    closed: bool,
}

impl PgConn {
    /// Runs `operation` on this connection, driving the connection while it runs.
    pub(crate) async fn run<T>(&mut self, operation: impl AsyncFnOnce(&mut Session) -> T) -> T {
        let PgConn {
            session,
            connection,
            closed,
        } = self;
        let mut operation = pin!(operation(session));
        std::future::poll_fn(|cx| {
            drive(connection, closed, cx);
            operation.as_mut().poll(cx)
        })
        .await
    }

    /// Whether it can still be used: its client is open and its connection has not ended
    /// (checked without waiting, so that a connection the server closed while it was idle is
    /// dropped at checkout instead of failing the caller's statement).
    fn usable(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        drive(&mut self.connection, &mut self.closed, &mut cx);
        !self.closed && !self.session.client.is_closed()
    }

    pub(crate) fn cancel_token(&self) -> tokio_postgres::CancelToken {
        self.session.client.cancel_token()
    }
}

fn drive(
    connection: &mut Connection<Socket, NoTlsStream>,
    closed: &mut bool,
    cx: &mut Context<'_>,
) {
    if !*closed && Pin::new(connection).poll(cx).is_ready() {
        *closed = true;
    }
}

/// At most `size` connections, idle ones kept; a checkout waits up to `wait` for a place.
pub(crate) struct PgPool {
    config: tokio_postgres::Config,
    statements: Statements,
    connect_timeout: Duration,
    size: usize,
    wait: Duration,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<PgConn>>,
    shown: String,
}

impl PgPool {
    pub(crate) fn new(
        config: tokio_postgres::Config,
        statements: Statements,
        connect_timeout: Duration,
        size: usize,
        wait: Duration,
        shown: String,
    ) -> PgPool {
        PgPool {
            config,
            statements,
            connect_timeout,
            size,
            wait,
            permits: Arc::new(Semaphore::new(size)),
            idle: Mutex::new(Vec::new()),
            shown,
        }
    }

    /// A connection: an idle one still usable, or a new one (connect and login within the
    /// connect deadline), once fewer than `size` are out.
    pub(crate) async fn get(&self) -> Result<Checkout<'_>> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Error::PoolExhausted {
                database: self.shown.clone(),
                size: self.size,
                waited: self.wait,
            })?
            .expect("the pool's semaphore is never closed");
        self.checkout(permit).await
    }

    /// A connection if one may be had without waiting for a place: `None` while `size` are
    /// out (a fast lane then claims the ordinary way instead of queueing for one).
    pub(crate) async fn try_get(&self) -> Result<Option<Checkout<'_>>> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => self.checkout(permit).await.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// A connection under `permit`: an idle one still usable, or a new one.
    async fn checkout(&self, permit: OwnedSemaphorePermit) -> Result<Checkout<'_>> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(mut conn) = idle else { break };
            if conn.usable() {
                return Ok(Checkout {
                    pool: self,
                    conn: Some(conn),
                    permit: Some(permit),
                });
            }
        }
        let conn = self.connect().await?;
        Ok(Checkout {
            pool: self,
            conn: Some(conn),
            permit: Some(permit),
        })
    }

    /// The driver's settings (for the LISTEN connection, which is not pooled).
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    async fn connect(&self) -> Result<PgConn> {
        let (client, connection) =
            tokio::time::timeout(self.connect_timeout, self.config.connect(NoTls))
                .await
                .map_err(|_| Error::Timeout {
                    database: self.shown.clone(),
                    what: "to a connection attempt",
                    after: self.connect_timeout,
                })??;
        Ok(PgConn {
            session: Session {
                client,
                statements: Mutex::default(),
                mode: self.statements,
            },
            connection,
            closed: false,
        })
    }
}

/// A checked-out connection: back to the pool when dropped, unless it was discarded or is no
/// longer usable.
pub(crate) struct Checkout<'a> {
    pool: &'a PgPool,
    conn: Option<PgConn>,
    /// The place in the pool; present until dropped or held.
    permit: Option<OwnedSemaphorePermit>,
}

/// A connection kept out of the pool beyond one operation, with its place (a fast lane's,
/// whose transaction stays open while its jobs run). Back with [`PgPool::resume`].
pub(crate) struct Held {
    conn: PgConn,
    permit: OwnedSemaphorePermit,
}

impl PgPool {
    /// A held connection as a checkout again: pooled when that is dropped.
    pub(crate) fn resume(&self, held: Held) -> Checkout<'_> {
        Checkout {
            pool: self,
            conn: Some(held.conn),
            permit: Some(held.permit),
        }
    }
}

impl Checkout<'_> {
    /// Keeps the connection out of the pool, with its place, until [`PgPool::resume`].
    pub(crate) fn hold(mut self) -> Held {
        Held {
            conn: self.conn.take().expect("present until dropped"),
            permit: self.permit.take().expect("present until dropped"),
        }
    }

    /// Closes the connection instead of pooling it (its state is unknown: a statement ran out
    /// of time on it).
    pub(crate) fn discard(mut self) {
        self.conn = None;
    }
}

impl std::ops::Deref for Checkout<'_> {
    type Target = PgConn;
    fn deref(&self) -> &PgConn {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Checkout<'_> {
    fn deref_mut(&mut self) -> &mut PgConn {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if !std::thread::panicking() && conn.usable() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(conn);
            }
        }
    }
}
