//! The SQLite backend: the embedded default. WAL mode so readers never block the writer, a
//! busy timeout so several worker processes can share one file, and every write (a claim, a
//! batch of outcomes) one short write transaction. SQLite has one writer at a time, so a claim
//! needs no SKIP LOCKED: the UPDATE ... RETURNING is atomic.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::types::Value;
use rusqlite::{
    params, params_from_iter, Connection, DatabaseName, ErrorCode, OpenFlags, OptionalExtension,
    Row, TransactionBehavior,
};

use super::pool::{Manage, Pool, PoolLimits};
use super::{
    filter, Cancel, ClaimParams, Fail, JobFilter, JobRow, QueueStats, Retry, Store, WorkerInfo,
    WorkerRow, VERSION,
};
use crate::enqueue::{JobId, NewJob};
use crate::error::{Error, Result};

/// Migrations, numbered, applied in order by `migrate`.
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        include_str!("../../migrations/sqlite/0001_create_delayed_jobs.sql"),
    ),
    (
        2,
        include_str!("../../migrations/sqlite/0002_worker_liveness.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_retention.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_paused_queues.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_job_control.sql"),
    ),
];

/// The database's clock as stored text; constant within one statement.
const NOW: &str = "strftime('%Y-%m-%d %H:%M:%f', 'now')";

/// Every column, times as unix seconds (REAL).
const COLUMNS: &str = "id, priority, attempts, handler, last_error, unixepoch(run_at, 'subsec'), \
     unixepoch(locked_at, 'subsec'), unixepoch(failed_at, 'subsec'), locked_by, queue, \
     unixepoch(created_at, 'subsec'), unixepoch(updated_at, 'subsec'), name, max_run_time, \
     unixepoch(started_at, 'subsec'), crashes, snoozes, unique_key, concurrency_key";

/// `dj_workers`' columns, times as unix seconds.
const WORKER_COLUMNS: &str = "name, host, pid, queues, version, unixepoch(started_at, 'subsec'), \
     unixepoch(heartbeat_at, 'subsec'), running";

/// `synchronous` setting: NORMAL (the default; durable across process crashes, and in WAL mode
/// loses at most the last commits on power loss) or FULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Synchronous {
    Normal,
    Full,
}

pub(crate) struct Manager {
    path: PathBuf,
    synchronous: Synchronous,
}

impl Manage for Manager {
    type Conn = Connection;
    fn open(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if conn.is_readonly(DatabaseName::Main)? {
            return self.open_read_only(conn);
        }
        use_wal(&conn)?;
        let sync = match self.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }
    fn healthy(&self, _conn: &mut Connection) -> bool {
        true
    }
}

impl Manager {
    /// A file SQLite could open only for reading (a read-only file, directory or mount) still
    /// serves the read commands; writes fail with [`Error::ReadOnly`]. A WAL file closed
    /// cleanly has no `-wal` and `-shm` files beside it, and reading it needs them unless
    /// the file is opened as immutable. With no `-wal` file no writer is using it, so this
    /// connection (a read command's, short-lived) reads it that way.
    fn open_read_only(&self, conn: Connection) -> Result<Connection> {
        match conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())) {
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::CannotOpen) => {}
            Err(e) => return Err(e.into()),
            Ok(()) => return Ok(conn),
        }
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            // Commits left in the -wal (a writer that crashed, or one still at work): reading
            // them needs the -shm file, and recovering them needs write access.
            return Err(Error::ReadOnly {
                database: format!("sqlite:{}", self.path.display()),
            });
        }
        let uri = format!("file:{}?immutable=1", uri_path(&self.path));
        let conn = Connection::open_with_flags(
            uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }
}

/// A path as the path of a `file:` URI: `%`, `?` and `#` escaped.
fn uri_path(path: &std::path::Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

/// How long a connection waits for another one's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Puts the file in WAL mode, which the file then keeps: only its first opener changes it.
/// The switch needs the file to itself and SQLite answers "database is locked" at once
/// instead of applying the busy timeout, so when several processes open a new file together,
/// the ones that lose retry (within the busy timeout) until the one that won is done.
fn use_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        let switched = conn
            .pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0))
            .and_then(|mode| {
                if mode.eq_ignore_ascii_case("wal") {
                    return Ok(());
                }
                conn.pragma_update(None, "journal_mode", "WAL")
            });
        match switched {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

pub(crate) struct SqliteStore {
    pool: Pool<Manager>,
    shown: String,
    limited: super::LimitedProbe,
}

impl SqliteStore {
    /// `rest` is what follows `sqlite:` in the URL: a path, optionally `?synchronous=full`.
    /// Of a [`crate::DbBuilder`]'s settings, the pool's apply; SQLite has no connect or
    /// statement deadline of dj's (its waits are the busy timeout) and no application name.
    pub(crate) fn open(rest: &str, options: &crate::db::Options) -> Result<SqliteStore> {
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
        let mut synchronous = Synchronous::Normal;
        let mut limits = PoolLimits::default();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if let Some(taken) = limits.take(key, value) {
                taken.map_err(bad)?;
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
                    return Err(bad(format!(
                        "unknown option `{pair}`; the options are `synchronous=normal|full`, `pool_size=N` and `pool_timeout=DURATION`"
                    )))
                }
            }
        }
        limits.apply(options);
        Ok(SqliteStore {
            pool: Pool::new(
                Manager {
                    path: PathBuf::from(path),
                    synchronous,
                },
                limits,
                format!("sqlite:{path}"),
            ),
            shown: format!("sqlite:{path}"),
            limited: Default::default(),
        })
    }

    fn run<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.pool.get()?;
        f(&mut conn).map_err(|e| missing_table(e, &self.shown))
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

/// The typed error for a missing table or a file that cannot be written.
fn missing_table(e: rusqlite::Error, database: &str) -> Error {
    let text = e.to_string();
    if text.contains("no such table: delayed_jobs") || text.contains("no such column") {
        Error::MissingTable {
            database: database.to_owned(),
        }
    } else if e.sqlite_error_code() == Some(ErrorCode::ReadOnly) {
        Error::ReadOnly {
            database: database.to_owned(),
        }
    } else {
        Error::Sqlite(e)
    }
}

/// SQLite keeps times to the millisecond; `unixepoch(.., 'subsec')` gives them as a float
/// (`…54.123` may read as `…54.12299…`), so round to the millisecond rather than truncate.
fn time(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis((secs.max(0.0) * 1000.0).round() as u64)
}

/// A required time column. A value SQLite cannot read as a time (text written by hand, say)
/// reads as the epoch rather than making the row, and every claim that meets it, fail.
fn required_time(row: &Row<'_>, index: usize) -> rusqlite::Result<SystemTime> {
    Ok(row.get::<_, Option<f64>>(index)?.map_or(UNIX_EPOCH, time))
}

fn job_row(row: &Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: row.get(0)?,
        priority: row.get(1)?,
        attempts: row.get(2)?,
        handler: row.get(3)?,
        last_error: row.get(4)?,
        run_at: required_time(row, 5)?,
        locked_at: row.get::<_, Option<f64>>(6)?.map(time),
        failed_at: row.get::<_, Option<f64>>(7)?.map(time),
        locked_by: row.get(8)?,
        queue: row.get(9)?,
        created_at: required_time(row, 10)?,
        updated_at: required_time(row, 11)?,
        name: row.get(12)?,
        max_run_time: row.get(13)?,
        started_at: row.get::<_, Option<f64>>(14)?.map(time),
        crashes: row.get(15)?,
        snoozes: row.get(16)?,
        unique_key: row.get(17)?,
        concurrency_key: row.get(18)?,
    })
}

/// Inserts rows on any connection: the pool's, or the caller's (inside its transaction if
/// one is open; otherwise in a transaction of its own, so a batch is all or nothing).
pub(crate) fn insert_jobs(conn: &Connection, rows: &[NewJob]) -> Result<Vec<JobId>> {
    let own_tx = conn.is_autocommit() && rows.len() > 1;
    if own_tx {
        conn.execute_batch("BEGIN IMMEDIATE")?;
    }
    let result = insert_rows(conn, rows);
    if own_tx {
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        conn.execute_batch(end)?;
    }
    result.map_err(|e| missing_table(e, "the caller's connection"))
}

/// What every claim requires of a row: ready, in the priority range, claimed by a registered
/// worker, not of a paused queue, of the listed queues (`?4`, a JSON array; `[]` is every
/// queue).
const CLAIMABLE: &str = "failed_at IS NULL AND locked_at IS NULL \
     AND run_at <= strftime('%Y-%m-%d %H:%M:%f', 'now') \
     AND priority >= ?2 AND priority <= ?3 \
     AND EXISTS (SELECT 1 FROM dj_workers WHERE name = ?1) \
     AND NOT EXISTS (SELECT 1 FROM dj_paused_queues p WHERE p.queue = delayed_jobs.queue) \
     AND (?4 = '[]' OR queue IN (SELECT value FROM json_each(?4)))";

/// The claim of unlimited jobs: up to `?5` rows in priority then run_at order.
static CLAIM: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE delayed_jobs SET locked_at = {NOW}, locked_by = ?1, started_at = NULL \
         WHERE id IN ( \
             SELECT id FROM delayed_jobs \
             WHERE {CLAIMABLE} AND concurrency_key IS NULL \
               AND NOT EXISTS (SELECT 1 FROM dj_queue_limits l WHERE l.queue = delayed_jobs.queue) \
             ORDER BY priority, run_at \
             LIMIT ?5) \
         RETURNING {COLUMNS}"
    )
});

/// Whether any limited job may be claimable (see the PostgreSQL backend).
static LIMITED_WORK: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT EXISTS (SELECT 1 FROM dj_queue_limits) \
             OR EXISTS (SELECT 1 FROM delayed_jobs WHERE concurrency_key IS NOT NULL \
                        AND failed_at IS NULL AND locked_at IS NULL AND run_at <= {NOW})"
    )
});

/// The claim of limited jobs, as on PostgreSQL: candidates (`?6` at most) ranked per key and
/// then per queue, each started only within its limits counting the running rows.
static CLAIM_LIMITED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH lim AS (SELECT queue, max_running FROM dj_queue_limits), \
         cand AS ( \
             SELECT id, queue, concurrency_key AS ckey, coalesce(concurrency_limit, 1) AS klim, \
                    priority, run_at FROM delayed_jobs \
             WHERE {CLAIMABLE} \
               AND (concurrency_key IS NOT NULL OR queue IN (SELECT queue FROM lim)) \
             ORDER BY priority, run_at LIMIT ?6), \
         krun AS ( \
             SELECT concurrency_key AS ckey, count(*) AS n FROM delayed_jobs \
             WHERE concurrency_key IN (SELECT ckey FROM cand) \
               AND failed_at IS NULL AND locked_at IS NOT NULL GROUP BY 1), \
         qrun AS ( \
             SELECT queue, count(*) AS n FROM delayed_jobs \
             WHERE queue IN (SELECT queue FROM lim) AND queue IN (SELECT queue FROM cand) \
               AND failed_at IS NULL AND locked_at IS NOT NULL GROUP BY 1), \
         kranked AS ( \
             SELECT c.*, row_number() OVER (PARTITION BY c.ckey ORDER BY c.priority, c.run_at, c.id) AS kn \
             FROM cand c), \
         kpass AS ( \
             SELECT k.* FROM kranked k LEFT JOIN krun r ON r.ckey = k.ckey \
             WHERE k.ckey IS NULL OR k.kn + coalesce(r.n, 0) <= k.klim), \
         qranked AS ( \
             SELECT k.*, row_number() OVER (PARTITION BY k.queue ORDER BY k.priority, k.run_at, k.id) AS qn \
             FROM kpass k), \
         picked AS ( \
             SELECT q.id FROM qranked q \
             LEFT JOIN lim l ON l.queue = q.queue LEFT JOIN qrun r ON r.queue = q.queue \
             WHERE l.queue IS NULL OR q.qn + coalesce(r.n, 0) <= l.max_running \
             ORDER BY q.priority, q.run_at LIMIT ?5) \
         UPDATE delayed_jobs SET locked_at = {NOW}, locked_by = ?1, started_at = NULL \
         WHERE id IN (SELECT id FROM picked) \
         RETURNING {COLUMNS}"
    )
});

/// The one insert of this backend, a row at a time, for every driver (rusqlite here, sqlx in
/// `enqueue_async`): name, handler, priority, queue, absolute run time (unix seconds) or
/// none, delay in seconds from the database's now, max_run_time.
pub(crate) static INSERT_ROW: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO delayed_jobs (name, handler, priority, queue, run_at, max_run_time, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, \
                 CASE WHEN ?5 IS NULL THEN strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', ?6)) \
                      ELSE strftime('%Y-%m-%d %H:%M:%f', ?5, 'unixepoch') END, \
                 ?7, {NOW}, {NOW}) RETURNING id"
    )
});

/// Inserts rows through the caller's sqlx connection (or the connection of its transaction),
/// with [`INSERT_ROW`]; several rows in one transaction of their own, or a savepoint inside
/// the caller's.
#[cfg(feature = "sqlx-sqlite")]
pub(crate) async fn insert_sqlx(
    conn: &mut sqlx::SqliteConnection,
    rows: &[NewJob],
) -> Result<Vec<JobId>> {
    use sqlx::Connection as _;
    async fn each(conn: &mut sqlx::SqliteConnection, rows: &[NewJob]) -> sqlx::Result<Vec<JobId>> {
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let (at, delay) = row.run_at.values();
            let id: i64 = sqlx::query_scalar(&INSERT_ROW)
                .bind(row.name)
                .bind(&row.handler)
                .bind(row.priority)
                .bind(row.queue.as_deref())
                .bind(at)
                .bind(delay)
                .bind(row.max_run_time)
                .fetch_one(&mut *conn)
                .await?;
            ids.push(id);
        }
        Ok(ids)
    }
    let inserted = if rows.len() > 1 {
        let mut tx = conn.begin().await.map_err(crate::error::from_sqlx)?;
        let ids = each(&mut tx, rows).await;
        match ids {
            Ok(ids) => tx.commit().await.map(|()| ids),
            Err(e) => Err(e),
        }
    } else {
        each(conn, rows).await
    };
    inserted.map_err(crate::error::from_sqlx)
}

/// Inserts rows through the caller's diesel connection with [`INSERT_ROW`]; several rows in a
/// transaction of their own, or a savepoint inside the caller's.
#[cfg(feature = "diesel-sqlite")]
pub(crate) fn insert_diesel(
    conn: &mut diesel::SqliteConnection,
    rows: &[NewJob],
) -> Result<Vec<JobId>> {
    use super::InsertedId as Inserted;
    use diesel::sql_types::{Double, Integer, Nullable, Text};
    use diesel::{Connection as _, RunQueryDsl as _};
    let each = |conn: &mut diesel::SqliteConnection| {
        rows.iter()
            .map(|row| {
                let (at, delay) = row.run_at.values();
                diesel::sql_query(INSERT_ROW.as_str())
                    .bind::<Text, _>(row.name)
                    .bind::<Text, _>(&row.handler)
                    .bind::<Integer, _>(row.priority)
                    .bind::<Nullable<Text>, _>(row.queue.as_deref())
                    .bind::<Nullable<Double>, _>(at)
                    .bind::<Double, _>(delay)
                    .bind::<Nullable<Integer>, _>(row.max_run_time)
                    .get_result::<Inserted>(conn)
                    .map(|r| r.id)
            })
            .collect::<diesel::QueryResult<Vec<JobId>>>()
    };
    let inserted = if rows.len() > 1 {
        conn.transaction(each)
    } else {
        each(conn)
    };
    inserted.map_err(crate::error::from_diesel)
}

fn insert_rows(conn: &Connection, rows: &[NewJob]) -> rusqlite::Result<Vec<JobId>> {
    let mut statement = conn.prepare_cached(&INSERT_ROW)?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let (at, delay) = row.run_at.values();
        let values = params![
            row.name,
            row.handler,
            row.priority,
            row.queue,
            at,
            delay,
            row.max_run_time
        ];
        ids.push(statement.query_row(values, |r| r.get(0))?);
    }
    Ok(ids)
}

fn ids_json(ids: &[JobId]) -> String {
    serde_json::to_string(ids).expect("ids serialize")
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn migrate(&self) -> Result<Vec<u32>> {
        self.write(|tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS dj_schema_migrations ( \
                     version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
            )?;
            let mut applied = Vec::new();
            for &(version, sql) in MIGRATIONS {
                let done: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM dj_schema_migrations WHERE version = ?1)",
                    [version],
                    |r| r.get(0),
                )?;
                if done {
                    continue;
                }
                tx.execute_batch(sql)?;
                tx.execute(
                    &format!(
                        "INSERT INTO dj_schema_migrations (version, applied_at) VALUES (?1, {NOW})"
                    ),
                    [version],
                )?;
                applied.push(version);
            }
            Ok(applied)
        })
    }

    fn check_schema(&self) -> Result<()> {
        self.run(|conn| {
            conn.prepare(&format!("SELECT {COLUMNS} FROM delayed_jobs LIMIT 0"))?;
            conn.prepare(&format!("SELECT {WORKER_COLUMNS} FROM dj_workers LIMIT 0"))?;
            conn.prepare("SELECT task, ran_at, ran_by FROM dj_maintenance LIMIT 0")?;
            conn.prepare("SELECT queue, paused_at FROM dj_paused_queues LIMIT 0")?;
            conn.prepare("SELECT queue, max_running FROM dj_queue_limits LIMIT 0")?;
            conn.prepare("SELECT job_id, requested_at FROM dj_cancels LIMIT 0")?;
            Ok(())
        })
    }

    fn check_writable(&self) -> Result<()> {
        // SQLite opens a file it cannot write read-only, and fails only at the first write.
        if self.pool.get()?.is_readonly(DatabaseName::Main)? {
            return Err(Error::ReadOnly {
                database: self.shown.clone(),
            });
        }
        Ok(())
    }

    fn now(&self) -> Result<SystemTime> {
        self.run(|conn| {
            let secs: f64 =
                conn.query_row("SELECT unixepoch('now', 'subsec')", [], |r| r.get(0))?;
            Ok(time(secs))
        })
    }

    fn job_insert_many(&self, rows: &[NewJob]) -> Result<Vec<JobId>> {
        let conn = self.pool.get()?;
        insert_jobs(&conn, rows).map_err(|e| match e {
            Error::MissingTable { .. } => Error::MissingTable {
                database: self.shown.clone(),
            },
            other => other,
        })
    }

    /// Limited jobs first (their limits bound how many), then the rest with the room left.
    /// The limited claim is one write transaction: SQLite's single writer means no other
    /// claim runs between its count of running rows and its update.
    fn job_claim(&self, p: &ClaimParams<'_>) -> Result<Vec<JobRow>> {
        let queues = serde_json::to_string(p.queues).expect("queue names serialize");
        let min = p.min_priority.unwrap_or(i32::MIN);
        let max = p.max_priority.unwrap_or(i32::MAX);
        let limited = self.limited.due() && {
            let any = self.run(|conn| {
                conn.prepare_cached(&LIMITED_WORK)?
                    .query_row([], |r| r.get(0))
            })?;
            self.limited.found(any);
            any
        };
        let mut jobs = if limited {
            let window = (p.limit as i64 * 4).max(100);
            self.write(|tx| {
                let mut statement = tx.prepare_cached(&CLAIM_LIMITED)?;
                let rows = statement.query_map(
                    params![p.worker, min, max, queues, p.limit as i64, window],
                    job_row,
                )?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })?
        } else {
            Vec::new()
        };
        let room = p.limit - jobs.len();
        if room > 0 {
            jobs.extend(self.run(|conn| {
                let mut statement = conn.prepare_cached(&CLAIM)?;
                let rows = statement
                    .query_map(params![p.worker, min, max, queues, room as i64], job_row)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })?);
        }
        super::claim_order(&mut jobs);
        Ok(jobs)
    }

    fn job_complete(&self, worker: &str, ids: &[JobId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.run(|conn| {
            conn.prepare_cached(
                "DELETE FROM delayed_jobs WHERE id IN (SELECT value FROM json_each(?1)) AND locked_by = ?2",
            )?
            .execute(params![ids_json(ids), worker])?;
            Ok(())
        })
    }

    fn job_retry(&self, worker: &str, retries: &[Retry]) -> Result<()> {
        if retries.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut statement = tx.prepare_cached(&format!(
                "UPDATE delayed_jobs SET attempts = ?2, \
                     last_error = CASE WHEN ?7 THEN last_error ELSE ?3 END, snoozes = snoozes + ?7, \
                     run_at = strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', ?4)), \
                     locked_at = CASE WHEN ?6 THEN NULL ELSE {NOW} END, \
                     locked_by = CASE WHEN ?6 THEN NULL ELSE locked_by END, updated_at = {NOW} \
                 WHERE id = ?1 AND locked_by = ?5"
            ))?;
            for r in retries {
                statement.execute(params![
                    r.id,
                    r.attempts,
                    r.last_error,
                    r.delay.as_secs_f64(),
                    worker,
                    r.release,
                    r.snoozed
                ])?;
            }
            Ok(())
        })
    }

    fn job_fail(&self, worker: &str, fails: &[Fail]) -> Result<()> {
        if fails.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut delete =
                tx.prepare_cached("DELETE FROM delayed_jobs WHERE id = ?1 AND locked_by = ?2")?;
            let mut keep = tx.prepare_cached(&format!(
                "UPDATE delayed_jobs SET attempts = ?2, last_error = ?3, failed_at = {NOW}, \
                     unique_key = NULL, locked_at = NULL, locked_by = NULL, updated_at = {NOW} \
                 WHERE id = ?1 AND locked_by = ?4"
            ))?;
            for f in fails {
                if f.destroy {
                    delete.execute(params![f.id, worker])?;
                } else {
                    keep.execute(params![f.id, f.attempts, f.last_error, worker])?;
                }
            }
            Ok(())
        })
    }

    fn job_unlock(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL \
                     WHERE id IN (SELECT value FROM json_each(?1)) AND locked_by = ?2",
                )?
                .execute(params![ids_json(ids), worker])?;
            Ok(n as u64)
        })
    }

    fn job_mark_started(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(&format!(
                    "UPDATE delayed_jobs SET started_at = {NOW} \
                     WHERE id IN (SELECT value FROM json_each(?1)) AND locked_by = ?2 \
                       AND started_at IS NULL"
                ))?
                .execute(params![ids_json(ids), worker])?;
            Ok(n as u64)
        })
    }

    fn job_release_orphaned(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL, crashes = crashes + 1 \
                     WHERE id IN (SELECT value FROM json_each(?1)) AND locked_by = ?2",
                )?
                .execute(params![ids_json(ids), worker])?;
            Ok(n as u64)
        })
    }

    fn job_unlock_worker(&self, worker: &str) -> Result<u64> {
        self.run(|conn| {
            let n = conn.execute(
                "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL WHERE locked_by = ?1",
                [worker],
            )?;
            Ok(n as u64)
        })
    }

    fn job_list(&self, filter: &JobFilter) -> Result<Vec<JobRow>> {
        let statement = filter::list(&DIALECT, filter, COLUMNS);
        self.run(|conn| {
            let mut prepared = conn.prepare(&statement.sql)?;
            let rows = prepared.query_map(params(&statement), job_row)?;
            rows.collect()
        })
    }

    fn job_count(&self, filter: &JobFilter) -> Result<i64> {
        let statement = filter::count(&DIALECT, filter);
        self.run(|conn| conn.query_row(&statement.sql, params(&statement), |r| r.get(0)))
    }

    fn job_delete(&self, filter: &JobFilter) -> Result<u64> {
        let statement = filter::delete(&DIALECT, filter);
        self.run(|conn| Ok(conn.execute(&statement.sql, params(&statement))? as u64))
    }

    fn job_retry_now(&self, filter: &JobFilter) -> Result<u64> {
        let statement = filter::retry_now(&DIALECT, filter);
        self.run(|conn| Ok(conn.execute(&statement.sql, params(&statement))? as u64))
    }

    fn job_stats(&self) -> Result<Vec<QueueStats>> {
        let sql = format!(
            "SELECT queue, \
               count(*) FILTER (WHERE failed_at IS NULL AND locked_at IS NULL AND run_at <= {NOW}), \
               count(*) FILTER (WHERE failed_at IS NULL AND locked_at IS NULL AND run_at > {NOW}), \
               count(*) FILTER (WHERE failed_at IS NULL AND locked_at IS NOT NULL), \
               count(*) FILTER (WHERE failed_at IS NOT NULL), \
               unixepoch('now', 'subsec') - min(unixepoch(run_at, 'subsec')) FILTER ( \
                   WHERE failed_at IS NULL AND locked_at IS NULL AND run_at <= {NOW}) \
             FROM delayed_jobs GROUP BY queue ORDER BY queue NULLS FIRST"
        );
        self.run(|conn| {
            let mut statement = conn.prepare_cached(&sql)?;
            let rows = statement.query_map([], |r| {
                Ok(QueueStats {
                    queue: r.get(0)?,
                    ready: r.get(1)?,
                    scheduled: r.get(2)?,
                    running: r.get(3)?,
                    failed: r.get(4)?,
                    oldest_ready_age: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    fn worker_register(&self, w: &WorkerInfo<'_>) -> Result<()> {
        let queues = w.queues_column();
        self.run(|conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO dj_workers (name, host, pid, queues, version, started_at, heartbeat_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, {NOW}, {NOW}) \
                 ON CONFLICT (name) DO UPDATE SET host = ?2, pid = ?3, queues = ?4, version = ?5, \
                     started_at = {NOW}, heartbeat_at = {NOW}, running = 0"
            ))?
            .execute(params![w.name, w.host, w.pid, queues, VERSION])?;
            Ok(())
        })
    }

    fn worker_heartbeat(&self, name: &str, running: i32) -> Result<bool> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(&format!(
                    "UPDATE dj_workers SET heartbeat_at = {NOW}, running = ?2 WHERE name = ?1"
                ))?
                .execute(params![name, running])?;
            Ok(n > 0)
        })
    }

    fn worker_remove(&self, name: &str, stale_after: Option<Duration>) -> Result<bool> {
        let secs = stale_after.map(|d| d.as_secs_f64());
        self.run(|conn| {
            let n = conn
                .prepare_cached(
                    "DELETE FROM dj_workers WHERE name = ?1 AND (?2 IS NULL OR \
                     unixepoch(heartbeat_at, 'subsec') < unixepoch('now', 'subsec') - ?2)",
                )?
                .execute(params![name, secs])?;
            Ok(n > 0)
        })
    }

    fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        self.run(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {WORKER_COLUMNS} FROM dj_workers ORDER BY name"
            ))?;
            let rows = statement.query_map([], |r| {
                Ok(WorkerRow {
                    name: r.get(0)?,
                    host: r.get(1)?,
                    pid: r.get(2)?,
                    queues: r.get(3)?,
                    version: r.get(4)?,
                    started_at: required_time(r, 5)?,
                    heartbeat_at: required_time(r, 6)?,
                    running: r.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    fn job_prune_failed(&self, older_than: Duration, limit: i64) -> Result<u64> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(
                    "DELETE FROM delayed_jobs WHERE id IN ( \
                         SELECT id FROM delayed_jobs WHERE failed_at IS NOT NULL \
                           AND failed_at < strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', ?1)) \
                         ORDER BY failed_at LIMIT ?2)",
                )?
                .execute(params![older_than.as_secs_f64(), limit])?;
            Ok(n as u64)
        })
    }

    fn queue_pause(&self, queue: &str, paused: bool) -> Result<bool> {
        self.run(|conn| {
            let n = if paused {
                conn.prepare_cached("INSERT OR IGNORE INTO dj_paused_queues (queue) VALUES (?1)")?
                    .execute(params![queue])?
            } else {
                conn.prepare_cached("DELETE FROM dj_paused_queues WHERE queue = ?1")?
                    .execute(params![queue])?
            };
            Ok(n > 0)
        })
    }

    fn queue_paused(&self) -> Result<Vec<String>> {
        self.run(|conn| {
            let mut statement =
                conn.prepare_cached("SELECT queue FROM dj_paused_queues ORDER BY queue")?;
            let rows = statement.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn job_cancel(&self, id: JobId) -> Result<Cancel> {
        self.write(|tx| {
            let running: Option<bool> = tx
                .query_row(
                    "SELECT locked_at IS NOT NULL FROM delayed_jobs WHERE id = ?1 AND failed_at IS NULL",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(match running {
                None => Cancel::NotFound,
                Some(true) => {
                    tx.execute("INSERT OR IGNORE INTO dj_cancels (job_id) VALUES (?1)", [id])?;
                    Cancel::Requested
                }
                Some(false) => {
                    tx.execute(
                        &format!(
                            "UPDATE delayed_jobs SET failed_at = {NOW}, last_error = 'cancelled', \
                             unique_key = NULL, updated_at = {NOW} WHERE id = ?1"
                        ),
                        [id],
                    )?;
                    Cancel::Dequeued
                }
            })
        })
    }

    fn job_cancel_requested(&self, ids: &[JobId]) -> Result<Vec<JobId>> {
        self.run(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT job_id FROM dj_cancels WHERE job_id IN (SELECT value FROM json_each(?1))",
            )?;
            let rows = statement.query_map([ids_json(ids)], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn cancel_prune(&self) -> Result<u64> {
        self.run(|conn| {
            let n = conn.execute(
                "DELETE FROM dj_cancels WHERE NOT EXISTS ( \
                     SELECT 1 FROM delayed_jobs j \
                     WHERE j.id = dj_cancels.job_id AND j.locked_at IS NOT NULL)",
                [],
            )?;
            Ok(n as u64)
        })
    }

    fn queue_limit(&self, queue: &str, max_running: Option<i32>) -> Result<bool> {
        self.run(|conn| {
            let n = match max_running {
                Some(max) => conn.execute(
                    &format!(
                        "INSERT INTO dj_queue_limits (queue, max_running) VALUES (?1, ?2) \
                         ON CONFLICT (queue) DO UPDATE SET max_running = excluded.max_running, \
                             set_at = {NOW} \
                         WHERE dj_queue_limits.max_running <> excluded.max_running"
                    ),
                    params![queue, max],
                )?,
                None => conn.execute("DELETE FROM dj_queue_limits WHERE queue = ?1", [queue])?,
            };
            Ok(n > 0)
        })
    }

    fn queue_limits(&self) -> Result<Vec<(String, i32)>> {
        self.run(|conn| {
            let mut statement = conn
                .prepare_cached("SELECT queue, max_running FROM dj_queue_limits ORDER BY queue")?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    fn maintenance_claim(&self, task: &str, worker: &str, every: Duration) -> Result<bool> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(&format!(
                    "UPDATE dj_maintenance SET ran_at = {NOW}, ran_by = ?2 \
                     WHERE task = ?1 AND unixepoch(ran_at, 'subsec') <= unixepoch('now', 'subsec') - ?3"
                ))?
                .execute(params![task, worker, every.as_secs_f64()])?;
            Ok(n > 0)
        })
    }
}

/// SQLite's spelling of the filtered commands.
const DIALECT: filter::Dialect = filter::Dialect {
    now: NOW,
    placeholder: |n| format!("?{n}"),
};

/// A filtered statement's values, bound as SQLite parameters.
fn params(statement: &filter::Statement) -> rusqlite::ParamsFromIter<Vec<Value>> {
    params_from_iter(
        statement
            .values
            .iter()
            .map(|v| match v {
                filter::Value::Text(t) => Value::Text(t.clone()),
                filter::Value::Int(i) => Value::Integer(*i),
            })
            .collect(),
    )
}

/// The schema SQL, as `schema` prints it.
pub(crate) fn schema_sql() -> String {
    super::schema_of(MIGRATIONS)
}

#[cfg(test)]
mod tests {
    use super::time;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_keep_their_milliseconds() {
        // 1764632514.123 is 1764632514.12299990654… as a double.
        let t = time(1_764_632_514.123);
        assert_eq!(t, UNIX_EPOCH + Duration::from_millis(1_764_632_514_123));
        assert_eq!(time(-5.0), UNIX_EPOCH);
    }
}
