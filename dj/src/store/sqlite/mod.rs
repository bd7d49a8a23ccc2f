//! The SQLite backend: the embedded default. WAL mode so readers never block the writer, a
//! busy timeout so several worker processes can share one file, and every write (a claim, a
//! batch of outcomes) one short write transaction. SQLite has one writer at a time, so a claim
//! needs no SKIP LOCKED: the UPDATE ... RETURNING is atomic.
//!
//! Files by concern: `connect` (opening a file, read-only files, typed errors), `sql` (every
//! statement's text), `rows` (rows and times as dj's types), `insert` (the one insert
//! algorithm and the rusqlite adapter), `targets` (the caller's sqlx and diesel connections),
//! `wakeups` (how idle workers hear of new work), `store` (the `Store` impl).

use std::path::PathBuf;

use rusqlite::{Connection, TransactionBehavior};

use super::pool::{Pool, PoolLimits};
use crate::error::{Error, Result};

pub(crate) mod complete;
mod connect;
mod insert;
mod rows;
mod sql;
mod store;
mod targets;
mod wakeups;
mod workflow;

use connect::{typed_error, Manager, Synchronous};
#[cfg(feature = "diesel-sqlite")]
pub(crate) use targets::insert_diesel;
pub(crate) use targets::insert_rusqlite;
#[cfg(feature = "sqlx-sqlite")]
pub(crate) use targets::insert_sqlx;

/// Migrations, numbered, applied in order by `migrate`.
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        include_str!("../../../migrations/sqlite/0001_create_delayed_jobs.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/sqlite/0002_worker_liveness.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/sqlite/0003_retention.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/sqlite/0004_paused_queues.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/sqlite/0005_job_control.sql"),
    ),
    (6, include_str!("../../../migrations/sqlite/0006_cron.sql")),
    (
        7,
        include_str!("../../../migrations/sqlite/0007_throughput.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/sqlite/0008_keyed_ready.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/sqlite/0009_wakeups.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/sqlite/0010_sql_enqueue.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/sqlite/0011_fast_lane.sql"),
    ),
    (
        12,
        include_str!("../../../migrations/sqlite/0012_autovacuum.sql"),
    ),
    (
        13,
        include_str!("../../../migrations/sqlite/0013_results.sql"),
    ),
    (
        14,
        include_str!("../../../migrations/sqlite/0014_sequences.sql"),
    ),
    (
        15,
        include_str!("../../../migrations/sqlite/0015_complete_in.sql"),
    ),
    (
        16,
        include_str!("../../../migrations/sqlite/0016_attempts.sql"),
    ),
    (
        17,
        include_str!("../../../migrations/sqlite/0017_progress.sql"),
    ),
    (
        18,
        include_str!("../../../migrations/sqlite/0018_rate_limits.sql"),
    ),
    (
        19,
        include_str!("../../../migrations/sqlite/0019_key_heads.sql"),
    ),
    (
        20,
        include_str!("../../../migrations/sqlite/0020_workflows.sql"),
    ),
];

/// The schema SQL, as `schema` prints it.
pub(crate) fn schema_sql() -> String {
    super::schema_of(MIGRATIONS)
}

pub(crate) struct SqliteStore {
    pool: Pool<Manager>,
    shown: String,
    path: PathBuf,
    limited: super::LimitedProbe,
    refill: super::RateRefill,
    keys: super::KeyCursor,
}

/// What a `sqlite:` URL says besides the path.
struct UrlOptions {
    synchronous: Synchronous,
    limits: PoolLimits,
}

impl SqliteStore {
    /// `rest` is what follows `sqlite:` in the URL: a path, optionally `?synchronous=full`.
    /// Of a [`crate::DbBuilder`]'s settings, the pool's apply; SQLite has no connect or
    /// statement deadline of dj's (its waits are the busy timeout) and no application name.
    pub(crate) fn open(rest: &str, options: &super::Options) -> Result<SqliteStore> {
        let bad = |reason: String| Error::BadUrl {
            url: format!("sqlite:{rest}"),
            reason,
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(bad("no file path after `sqlite:`".to_owned()));
        }
        let UrlOptions {
            synchronous,
            mut limits,
        } = url_options(query).map_err(bad)?;
        limits.apply(options);
        let manager = Manager {
            path: PathBuf::from(path),
            synchronous,
        };
        Ok(SqliteStore {
            pool: Pool::new(manager, limits, format!("sqlite:{path}")),
            shown: format!("sqlite:{path}"),
            path: PathBuf::from(path),
            limited: Default::default(),
            refill: Default::default(),
            keys: Default::default(),
        })
    }

    /// Runs `f` on a pooled connection, its error typed (see `connect::typed_error`).
    fn run<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.pool.get()?;
        f(&mut conn).map_err(|e| typed_error(e, Some(&conn), &self.shown, Some(&self.path)))
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`: takes the write lock up front, so
    /// the busy timeout applies instead of a failed upgrade).
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.run(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }
}

/// The URL's options: `synchronous=normal|full` and the pool's.
fn url_options(query: Option<&str>) -> std::result::Result<UrlOptions, String> {
    let mut synchronous = Synchronous::Normal;
    let mut limits = PoolLimits::default();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if let Some(taken) = limits.take(key, value) {
            taken?;
            continue;
        }
        match pair.split_once('=') {
            Some(("synchronous", v)) if v.eq_ignore_ascii_case("normal") => {
                synchronous = Synchronous::Normal
            }
            Some(("synchronous", v)) if v.eq_ignore_ascii_case("full") => {
                synchronous = Synchronous::Full
            }
            _ => {
                return Err(format!(
                    "unknown option `{pair}`; the options are `synchronous=normal|full`, `pool_size=N` and `pool_timeout=DURATION`"
                ))
            }
        }
    }
    Ok(UrlOptions {
        synchronous,
        limits,
    })
}
