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
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Connection, NoTls, Socket, Statement};

use crate::error::{Error, Result};

/// A connection's client and its prepared statements: what an operation works with.
pub(crate) struct Session {
    client: Client,
    statements: Mutex<HashMap<&'static str, Statement>>,
}

impl Session {
    /// `sql` prepared once per connection.
    pub(crate) async fn prepare_typed_cached(
        &self,
        sql: &'static str,
        types: &[Type],
    ) -> Result<Statement, tokio_postgres::Error> {
        let cached = self.lock().get(sql).cloned();
        if let Some(statement) = cached {
            return Ok(statement);
        }
        let statement = self.client.prepare_typed(sql, types).await?;
        self.lock().insert(sql, statement.clone());
        Ok(statement)
    }

    /// Forgets the prepared statements (after `migrate` changed the tables they name).
    pub(crate) fn clear_statements(&mut self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Statement>> {
        self.statements.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::ops::Deref for Session {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
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
        connect_timeout: Duration,
        size: usize,
        wait: Duration,
        shown: String,
    ) -> PgPool {
        PgPool {
            config,
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
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(mut conn) = idle else { break };
            if conn.usable() {
                return Ok(Checkout {
                    pool: self,
                    conn: Some(conn),
                    _permit: permit,
                });
            }
        }
        let conn = self.connect().await?;
        Ok(Checkout {
            pool: self,
            conn: Some(conn),
            _permit: permit,
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
    _permit: OwnedSemaphorePermit,
}

impl Checkout<'_> {
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
