//! The PostgreSQL backend: the deployment target. Claims use `FOR UPDATE SKIP LOCKED` in a
//! CTE (never `IN (...)`), outcomes are written for many jobs per statement, inserts are one
//! statement per batch, and an `AFTER INSERT ... FOR EACH STATEMENT` trigger NOTIFYs idle
//! workers.
//!
//! By concern: `connect` (the URL's keys, limits, passwords hidden), `pool` (the
//! connection pool and how statements are sent), `listen` (LISTEN/NOTIFY wake-ups),
//! `sql` (every statement's text), `rows` (rows into dj's types), `insert` (the one
//! insert algorithm), `targets` (its adapter for each driver library, the pool's included),
//! `claim`, `lane` and `schema` (the claims, the fast lane and migrations, which take several
//! statements), and `store` (the `Store` impl, each method a call into these).

use std::future::Future;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::error::{Error, Result};
use crate::io;
use crate::model::{EnqueueOutcome, NewJob};
use connect::{hide_password, missing_table, shown_url, split_url, Limits};
use listen::{ListenAt, Listener, ResultListener};
use pool::{PgPool, Session, Sql, Statements};
use sql::Stmt;

mod claim;
pub(crate) mod complete;
mod connect;
mod floor;
mod insert;
mod lane;
mod listen;
mod pool;
mod rows;
mod schema;
mod sql;
mod store;
mod targets;
mod workflow;

pub(crate) use schema::schema_sql;
#[doc(hidden)]
pub use sql::claim::{
    CLAIM, CLAIM_FROM, CLAIM_LIMITED, CLAIM_LIMITED_QUEUES, CLAIM_QUEUES, CLAIM_QUEUES_FROM,
    LANE_CLAIM, LANE_CLAIM_FROM, LANE_LEFTOVERS, LANE_LEFTOVERS_FROM,
};
#[cfg(feature = "diesel-postgres")]
pub(crate) use targets::insert_diesel;
pub(crate) use targets::insert_jobs;
#[cfg(feature = "sqlx-postgres")]
pub(crate) use targets::insert_sqlx;
#[cfg(feature = "tokio-postgres")]
pub(crate) use targets::insert_tokio_postgres;

pub(crate) struct PgStore {
    pool: PgPool,
    limits: Limits,
    shown: String,
    /// Unnamed behind a transaction pooler: then LISTEN goes to `listen_at` or nowhere.
    statements: Statements,
    /// `listen_url`: where the worker LISTENs, if not on the pool's URL.
    listen_at: Option<ListenAt>,
    listener: Mutex<Option<Listener>>,
    /// The LISTEN that wakes this store's waits for results, once one has waited.
    results: Mutex<Option<ResultListener>>,
    limited: super::LimitedProbe,
    refill: super::RateRefill,
    keys: super::KeyCursor,
    floor: floor::ClaimFloor,
    last_ordinary: lane::LastOrdinary,
}

impl PgStore {
    pub(crate) fn open(url: &str, options: &super::Options) -> Result<PgStore> {
        let bad_url = |reason: String| Error::BadUrl {
            url: shown_url(url),
            reason,
        };
        let (driver_url, mut limits, pooling) = split_url(url).map_err(bad_url)?;
        let mut config =
            tokio_postgres::Config::from_str(&driver_url).map_err(|e| bad_url(e.to_string()))?;
        if let Some(&connect) = config.get_connect_timeout() {
            limits.connect = connect;
        }
        limits.pool.apply(options);
        limits.connect = options.connect_timeout.unwrap_or(limits.connect);
        limits.statement = options.statement_timeout.unwrap_or(limits.statement);
        config.connect_timeout(limits.connect);
        if let Some(name) = &options.application_name {
            config.application_name(name);
        }
        let listen_at = match options.listen_url.as_ref().or(pooling.listen_url.as_ref()) {
            Some(listen_url) => {
                let mut listen = tokio_postgres::Config::from_str(listen_url)
                    .map_err(|e| bad_url(format!("`listen_url`: {e}")))?;
                listen.connect_timeout(limits.connect);
                if let Some(name) = &options.application_name {
                    listen.application_name(name);
                }
                Some(ListenAt {
                    config: listen,
                    shown: hide_password(listen_url),
                })
            }
            None => None,
        };
        let pool = PgPool::new(
            config,
            pooling.statements,
            limits.connect,
            limits.pool.size,
            limits.pool.timeout,
            shown_url(url),
        );
        Ok(PgStore {
            pool,
            limits,
            shown: shown_url(url),
            statements: pooling.statements,
            listen_at,
            listener: Mutex::new(None),
            results: Mutex::new(None),
            limited: Default::default(),
            refill: Default::default(),
            keys: Default::default(),
            floor: Default::default(),
            last_ordinary: Default::default(),
        })
    }

    /// Runs one operation on a pooled connection within the statement deadline. A connection
    /// whose operation ran out of time is in an unknown state: it is closed, not pooled, and
    /// the server is asked to cancel what it was running.
    async fn run_async<T>(
        &self,
        operation: impl AsyncFnOnce(&mut Session) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T> {
        let mut conn = self.pool.get().await?;
        let result = tokio::time::timeout(self.limits.statement, conn.run(operation)).await;
        match result {
            Ok(done) => done.map_err(|e| self.error(e)),
            Err(_elapsed) => Err(self.ran_out(conn)),
        }
    }

    /// A statement on `conn` ran out of time: the connection is closed, the server asked to
    /// cancel what it runs, and the error says so.
    fn ran_out(&self, conn: pool::Checkout<'_>) -> Error {
        let cancel = conn.cancel_token();
        conn.discard();
        let bound = self.limits.connect;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(bound, cancel.cancel_query(NoTls)).await;
        });
        self.timeout("a statement", self.limits.statement)
    }

    /// The sync form of [`PgStore::run_async`]: blocks this thread (see [`crate::io`]).
    fn run<T>(
        &self,
        operation: impl AsyncFnOnce(&mut Session) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T> {
        io::block_on(self.run_async(operation))
    }

    /// One fixed statement on a pooled connection: its rows.
    fn query(&self, stmt: &Stmt, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.run(async |conn: &mut Session| {
            conn.query(Sql::Fixed(stmt.sql), stmt.types, params).await
        })
    }

    /// One fixed statement that returns no rows: how many rows it changed.
    fn execute(&self, stmt: &Stmt, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.run(async |conn: &mut Session| {
            conn.execute(Sql::Fixed(stmt.sql), stmt.types, params).await
        })
    }

    fn error(&self, e: tokio_postgres::Error) -> Error {
        missing_table(e, &self.shown)
    }

    fn timeout(&self, what: &'static str, after: Duration) -> Error {
        Error::Timeout {
            database: self.shown.clone(),
            what,
            after,
        }
    }

    /// Inserts rows on a pooled connection ([`insert::insert`], through the pool's session).
    /// What `enqueue_async` on a PostgreSQL `Db` awaits.
    pub(crate) fn insert<'a>(
        &'a self,
        rows: &'a [NewJob],
    ) -> impl Future<Output = Result<Vec<EnqueueOutcome>>> + Send + 'a {
        self.run_async(async move |conn: &mut Session| insert::insert(conn, rows).await)
    }
}
