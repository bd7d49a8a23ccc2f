//! The MySQL / MariaDB backend (`mysql://` URLs, feature `mysql`): MySQL 8.0 and later,
//! MariaDB 10.6 and later, the first versions with `FOR UPDATE SKIP LOCKED`. Through the
//! `mysql` crate (blocking, pure Rust), pooled by dj's own pool as SQLite is.
//!
//! Where MySQL differs from the other backends:
//! - No `UPDATE ... RETURNING`: a claim is one short transaction that selects its rows
//!   `FOR UPDATE SKIP LOCKED`, locks them and reads them back.
//! - No LISTEN: idle workers poll a wake-up number, as on SQLite (see `wakeups`).
//! - No partial indexes: the claim's index leads with the columns its predicate fixes.
//! - Times are `DATETIME(6)` in UTC: every connection sets `time_zone = '+00:00'`.
//!
//! Files by concern: `connect` (the URL, opening and checking a connection, typed errors),
//! `sql` (statement texts), `rows` (rows as dj's types), `insert` (the insert algorithm),
//! `wakeups`, `store` (the `Store` impl).

use mysql::prelude::Queryable;
use mysql::{Conn, TxOpts};

use super::pool::Pool;
use crate::error::Result;

pub(crate) mod complete;
mod connect;
mod insert;
mod rows;
mod sql;
mod store;
mod wakeups;
mod workflow;

use connect::Manager;

/// Migrations, numbered as on the other backends (a version means the same tables on each).
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        include_str!("../../../migrations/mysql/0001_create_delayed_jobs.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/mysql/0002_worker_liveness.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/mysql/0003_retention.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/mysql/0004_paused_queues.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/mysql/0005_job_control.sql"),
    ),
    (6, include_str!("../../../migrations/mysql/0006_cron.sql")),
    (
        7,
        include_str!("../../../migrations/mysql/0007_throughput.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/mysql/0008_keyed_ready.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/mysql/0009_wakeups.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/mysql/0010_sql_enqueue.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/mysql/0011_fast_lane.sql"),
    ),
    (
        12,
        include_str!("../../../migrations/mysql/0012_autovacuum.sql"),
    ),
    (
        13,
        include_str!("../../../migrations/mysql/0013_results.sql"),
    ),
    (
        14,
        include_str!("../../../migrations/mysql/0014_sequences.sql"),
    ),
    (
        15,
        include_str!("../../../migrations/mysql/0015_complete_in.sql"),
    ),
    (
        16,
        include_str!("../../../migrations/mysql/0016_attempts.sql"),
    ),
    (
        17,
        include_str!("../../../migrations/mysql/0017_progress.sql"),
    ),
    (
        18,
        include_str!("../../../migrations/mysql/0018_rate_limits.sql"),
    ),
    (
        19,
        include_str!("../../../migrations/mysql/0019_key_heads.sql"),
    ),
    (
        20,
        include_str!("../../../migrations/mysql/0020_workflows.sql"),
    ),
];

/// Migration 20's procedures: its text from the line that opens them (see `migrate`).
fn workflow_routines() -> &'static str {
    let (_, migration) = MIGRATIONS[MIGRATIONS.len() - 1];
    let at = migration
        .find(WORKFLOW_ROUTINES)
        .expect("migration 20 opens its routines with the marker line");
    &migration[at..]
}

/// The line of migration 20 that opens its procedures.
const WORKFLOW_ROUTINES: &str = "-- dj: the workflow routines.";

/// The schema SQL, as `schema` prints it.
pub(crate) fn schema_sql() -> String {
    super::schema_of(MIGRATIONS)
}

pub(crate) struct MysqlStore {
    pool: Pool<Manager>,
    shown: String,
    limited: super::LimitedProbe,
    refill: super::RateRefill,
    keys: super::KeyCursor,
    /// The wake-up number the last claim read before choosing its rows (`i64::MIN`: none
    /// yet), where an idle worker's wait starts: a change committed between that claim and
    /// the wait still wakes it.
    seen: std::sync::atomic::AtomicI64,
}

impl MysqlStore {
    /// `url` is the whole `mysql://` URL; dj's keys (`pool_size`, `pool_timeout`,
    /// `connect_timeout`, `statement_timeout`) are taken out, the rest is the driver's.
    pub(crate) fn open(url: &str, options: &super::Options) -> Result<MysqlStore> {
        let (manager, limits) = connect::manager(url, options)?;
        let shown = super::hide_password(url);
        Ok(MysqlStore {
            pool: Pool::new(manager, limits, shown.clone()),
            shown,
            limited: Default::default(),
            refill: Default::default(),
            keys: Default::default(),
            seen: std::sync::atomic::AtomicI64::new(i64::MIN),
        })
    }

    /// Runs `f` on a pooled connection, its error typed (see `connect::typed_error`).
    fn run<T>(&self, f: impl FnOnce(&mut Conn) -> mysql::Result<T>) -> Result<T> {
        let mut session = self.pool.get()?;
        let out = f(&mut session.conn);
        if let Err(e) = &out {
            // Not the server's answer: the socket failed or timed out mid-statement.
            session.broken = !matches!(e, mysql::Error::MySqlError(_));
        }
        out.map_err(|e| connect::typed_error(e, &self.shown))
    }

    /// Runs `f` in one transaction, committed when `f` returns `Ok` (rolled back otherwise).
    /// A deadlock (InnoDB rolls the whole transaction back and says so) runs it again, a few
    /// times: two claims or two unique enqueues can meet in one index gap.
    fn write<T>(
        &self,
        mut f: impl FnMut(&mut mysql::Transaction<'_>) -> mysql::Result<T>,
    ) -> Result<T> {
        retry_deadlocks(|| {
            self.run(|conn| {
                let mut tx = conn.start_transaction(TxOpts::default())?;
                let out = f(&mut tx)?;
                tx.commit()?;
                Ok(out)
            })
        })
    }
}

/// Runs `attempt` (one whole transaction) again while InnoDB picks it as a deadlock's victim,
/// up to [`DEADLOCK_TRIES`] times, after a short spread wait each time.
fn retry_deadlocks<T>(mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut tries = 0;
    loop {
        match attempt() {
            Err(e) if connect::is_deadlock(&e) && tries < DEADLOCK_TRIES => {
                tries += 1;
                deadlock_pause(tries);
            }
            other => return other,
        }
    }
}

/// How often a transaction InnoDB chose as a deadlock's victim runs again.
const DEADLOCK_TRIES: u32 = 20;

/// A short wait before running a deadlock's victim again, growing and spread (by the clock's
/// nanoseconds), so that the transactions that met do not meet again at once.
fn deadlock_pause(tries: u32) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let ms = u64::from(nanos % (tries.min(10) * 5 + 1));
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

/// Runs a script of several statements (a migration), reading every statement's result: an
/// error of any of them is returned. (The driver's `query_drop` reads only the first's and
/// drops the others', their errors with them.)
fn run_script(q: &mut impl Queryable, script: &str) -> mysql::Result<()> {
    let mut result = q.query_iter(script)?;
    while let Some(set) = result.iter() {
        for row in set {
            row?;
        }
    }
    Ok(())
}

/// Runs `sql` and gives the rows it changed.
fn changed(
    q: &mut impl Queryable,
    sql: &str,
    params: impl Into<mysql::Params>,
) -> mysql::Result<u64> {
    Ok(q.exec_iter(sql, params)?.affected_rows())
}

/// Enqueue inside the caller's `mysql::Transaction` (see `insert::in_callers`).
pub(crate) fn insert_in_transaction(
    tx: &mut mysql::Transaction<'_>,
    rows: &[crate::model::NewJob],
) -> Result<Vec<crate::model::EnqueueOutcome>> {
    insert::in_callers(tx, rows)
        .map_err(|e| connect::typed_error(e, "the caller's MySQL transaction"))
}

#[cfg(feature = "sqlx-mysql")]
pub(crate) use insert::insert_sqlx;

#[cfg(feature = "diesel-mysql")]
pub(crate) use insert::insert_diesel;

/// Enqueue on the caller's `mysql::Conn` (see `insert::on_conn`).
pub(crate) fn insert_on_conn(
    conn: &mut mysql::Conn,
    rows: &[crate::model::NewJob],
) -> Result<Vec<crate::model::EnqueueOutcome>> {
    insert::on_conn(conn, rows)
        .map_err(|e| connect::typed_error(e, "the caller's MySQL connection"))
}
