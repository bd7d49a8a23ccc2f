//! The SQLite backend: the embedded default. WAL mode so readers never block the writer, a
//! busy timeout so several worker processes can share one file, and every write (a claim, a
//! batch of outcomes) one short write transaction. SQLite has one writer at a time, so a claim
//! needs no SKIP LOCKED: the UPDATE ... RETURNING is atomic.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::types::Value;
use rusqlite::{
    params, params_from_iter, Connection, DatabaseName, ErrorCode, OpenFlags, OptionalExtension,
    Row, TransactionBehavior,
};

use super::pool::{Manage, Pool, PoolLimits};
use super::{
    filter, Cancel, ClaimParams, CronFire, Fail, JobFilter, JobRow, QueueStats, Retry, Store,
    WorkerInfo, WorkerRow, VERSION,
};
use crate::model::{Missed, ScheduleDef, ScheduleRow};
use crate::model::{unix_secs, EnqueueOutcome, JobId, NewJob};
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
    (6, include_str!("../../migrations/sqlite/0006_cron.sql")),
    (
        7,
        include_str!("../../migrations/sqlite/0007_throughput.sql"),
    ),
    (
        8,
        include_str!("../../migrations/sqlite/0008_keyed_ready.sql"),
    ),
    (9, include_str!("../../migrations/sqlite/0009_wakeups.sql")),
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
        )
        .map_err(|e| self.error(e, None))?;
        match self.set_up(&conn) {
            Ok(true) => Ok(conn),
            Ok(false) => self.open_read_only(conn),
            // The file can be written but not the directory holding it, where SQLite must
            // create the `-wal` and `-shm` files before it reads or writes a WAL file: read
            // it as a file in a read-only place.
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::ReadOnly) => {
                drop(conn);
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_URI,
                )?;
                conn.busy_timeout(BUSY_TIMEOUT)?;
                self.open_read_only(conn)
            }
            // A new connection maps the `-shm` file, which a full disk may not let grow.
            Err(e) => Err(self.error(e, Some(&conn))),
        }
    }
    fn healthy(&self, _conn: &mut Connection) -> bool {
        true
    }
}

impl Manager {
    /// The busy timeout, WAL and `synchronous`; `false` when SQLite opened the file only for
    /// reading.
    fn set_up(&self, conn: &Connection) -> rusqlite::Result<bool> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if conn.is_readonly(DatabaseName::Main)? {
            return Ok(false);
        }
        use_wal(conn)?;
        let sync = match self.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(true)
    }

    fn error(&self, e: rusqlite::Error, conn: Option<&Connection>) -> Error {
        typed_error(e, conn, &self.shown(), Some(&self.path))
    }

    fn shown(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    /// A file SQLite could open only for reading (a read-only file, directory or mount) still
    /// serves the read commands; writes fail with [`Error::ReadOnly`]. A WAL file closed
    /// cleanly has no `-wal` and `-shm` files beside it, and reading it needs them unless
    /// the file is opened as immutable. With no `-wal` file no writer is using it, so this
    /// connection (a read command's, short-lived) reads it that way.
    fn open_read_only(&self, conn: Connection) -> Result<Connection> {
        match conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())) {
            // No `-shm` file, and none can be made: SQLite answers "unable to open" in a
            // read-only mount, "readonly directory" in a directory it cannot write.
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)
                ) => {}
            Err(e) => return Err(e.into()),
            Ok(()) => return Ok(conn),
        }
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            // Commits left in the -wal (a writer that crashed, or one still at work): reading
            // them needs the -shm file, and recovering them needs write access.
            return Err(read_only(&self.shown(), Some(&self.path), true));
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
    path: PathBuf,
    limited: super::LimitedProbe,
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
            path: PathBuf::from(path),
            limited: Default::default(),
        })
    }

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

    /// Runs `update`, which makes rows claimable (retry, run now, unlock, release, resume), and, when
    /// it changed any, moves the `dj_wakeups` counter in the same transaction: how idle
    /// workers hear of it (see [`Store::wait_for_jobs`]). Returns the rows changed.
    fn waking(
        &self,
        update: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<usize>,
    ) -> Result<u64> {
        self.write(|tx| {
            let n = update(tx)?;
            if n > 0 {
                tx.prepare_cached("UPDATE dj_wakeups SET n = n + 1")?
                    .execute([])?;
            }
            Ok(n as u64)
        })
    }

    /// A number that grows whenever rows may have become claimable: the inserts counted by
    /// `delayed_jobs`' AUTOINCREMENT sequence plus the `dj_wakeups` counter (`None` if it
    /// cannot be read: a schema before 0009).
    fn wakeups(&self) -> Option<i64> {
        self.run(|conn| {
            conn.prepare_cached(
                "SELECT (SELECT coalesce(max(seq), 0) FROM sqlite_sequence \
                         WHERE name = 'delayed_jobs') \
                      + (SELECT n FROM dj_wakeups)",
            )?
            .query_row([], |r| r.get(0))
        })
        .ok()
    }
}

/// How often an idle SQLite worker reads the `dj_wakeups` counter.
const WAKEUP_POLL: Duration = Duration::from_millis(100);

/// The typed error for a missing table, a file that cannot be written, or a full disk.
/// `conn` is the connection the error happened on, `path` the file, when known.
fn typed_error(
    e: rusqlite::Error,
    conn: Option<&Connection>,
    database: &str,
    path: Option<&Path>,
) -> Error {
    let text = e.to_string();
    // dj's other tables (`dj_...`) come from later migrations.
    if text.contains("no such table: delayed_jobs")
        || text.contains("no such table: dj_")
        || text.contains("no such column")
    {
        Error::MissingTable {
            database: database.to_owned(),
        }
    } else if e.sqlite_error_code() == Some(ErrorCode::ReadOnly) {
        read_only(database, path, false)
    } else if is_disk_full(&e, conn) {
        Error::DiskFull {
            database: database.to_owned(),
        }
    } else {
        Error::Sqlite(e)
    }
}

/// SQLITE_FULL, or an I/O error whose cause was no space (or quota) left: SQLite reports a
/// `-shm` file it could not grow as "disk I/O error" (SQLITE_IOERR_SHMSIZE), for one.
fn is_disk_full(e: &rusqlite::Error, conn: Option<&Connection>) -> bool {
    match (e.sqlite_error_code(), conn) {
        (Some(ErrorCode::DiskFull), _) => true,
        (Some(ErrorCode::SystemIoFailure), Some(conn)) => {
            // SAFETY: the handle is valid while `conn` lives; this only reads the errno
            // SQLite kept from its last failed system call.
            let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
            errno == libc::ENOSPC || errno == libc::EDQUOT
        }
        _ => false,
    }
}

/// [`Error::ReadOnly`], naming what this process cannot write: the file, or the directory
/// where SQLite creates its `-wal` and `-shm` files. `wal_commits`: the file has commits in
/// its `-wal`, which only a process with write access can read.
fn read_only(database: &str, path: Option<&Path>, wal_commits: bool) -> Error {
    let both = || {
        (
            "the file, or the directory holding it (where SQLite creates its `-wal` and `-shm` \
             files), cannot be written"
                .to_owned(),
            "give this user write access to both, or mount them read-write".to_owned(),
        )
    };
    let (what, fix) = match path {
        Some(path) if !writable(path) => (
            "the file cannot be written".to_owned(),
            "give this user write access to it, or mount it read-write".to_owned(),
        ),
        Some(path) => {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if writable(dir) {
                both()
            } else {
                (
                    format!(
                        "its directory {} cannot be written, and SQLite must create \
                         `{name}-wal` and `{name}-shm` there to use the file",
                        dir.display()
                    ),
                    format!(
                        "give this user write access to {}, or mount it read-write",
                        dir.display()
                    ),
                )
            }
        }
        None => both(),
    };
    let reason = if wal_commits {
        format!("{what}, and its `-wal` file holds commits that only a process with write access can read; {fix}")
    } else {
        format!("{what}; {fix}")
    };
    Error::ReadOnly {
        database: database.to_owned(),
        reason,
    }
}

/// Whether this process may write to `path` (`access(2)`, which also answers `EROFS` for a
/// read-only mount, and which root passes on permission bits alone).
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
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

/// Inserts rows through the caller's connection, inside its transaction if one is open (the
/// rows are then the caller's to commit); otherwise committed before this returns.
pub(crate) fn insert_jobs(conn: &Connection, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
    let path = conn.path().filter(|p| !p.is_empty()).map(Path::new);
    let database = path.map_or_else(
        || "the caller's connection".to_owned(),
        |p| format!("sqlite:{}", p.display()),
    );
    insert_committed(conn, rows).map_err(|e| typed_error(e, Some(conn), &database, path))
}

/// Inserts rows on any connection, the pool's or the caller's. In autocommit, a lone plain
/// row is one statement that commits as it finishes; several rows, or a unique one (whose
/// holder is looked for before the insert), get a transaction of their own, so that a batch
/// is all or nothing and a unique row's two statements see one state of the table. Either
/// way an `Ok` means committed: the error of the statement's end and of the commit (a full
/// disk, an I/O error) is returned, never dropped.
fn insert_committed(conn: &Connection, rows: &[NewJob]) -> rusqlite::Result<Vec<EnqueueOutcome>> {
    if !(conn.is_autocommit() && needs_transaction(rows)) {
        return insert_rows(conn, rows);
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = insert_rows(conn, rows).and_then(|out| conn.execute_batch("COMMIT").map(|()| out));
    if result.is_err() && !conn.is_autocommit() {
        // A failed insert, or a commit SQLite left open (a busy one): the connection goes
        // back to its owner with no transaction.
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// Several rows, or a unique one (whose holder is looked for before the insert).
fn needs_transaction(rows: &[NewJob]) -> bool {
    rows.len() > 1 || rows.iter().any(|row| row.unique.is_some())
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
        "UPDATE delayed_jobs SET locked_at = {NOW}, locked_by = ?1, started_at = NULL, \
             unique_key = CASE WHEN unique_running THEN unique_key END \
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
         UPDATE delayed_jobs SET locked_at = {NOW}, locked_by = ?1, started_at = NULL, \
             unique_key = CASE WHEN unique_running THEN unique_key END \
         WHERE id IN (SELECT id FROM picked) \
         RETURNING {COLUMNS}"
    )
});

/// The one insert of this backend, a row at a time, for every driver (rusqlite here, sqlx in
/// `enqueue_async`): name, handler, priority, queue, absolute run time (unix seconds) or
/// none, delay in seconds from the database's now, max_run_time, concurrency key and limit,
/// unique key and whether it is held until done.
pub(crate) static INSERT_ROW: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO delayed_jobs (name, handler, priority, queue, run_at, max_run_time, \
                                   concurrency_key, concurrency_limit, unique_key, unique_running, \
                                   created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, {RUN_AT}, ?7, ?8, ?9, ?10, ?11, {NOW}, {NOW}) \
         RETURNING id, 0 AS outcome"
    )
});

/// The run time an insert binds as `?5` (absolute, unix seconds) or `?6` (seconds from now).
const RUN_AT: &str = "CASE WHEN ?5 IS NULL \
     THEN strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', ?6)) \
     ELSE strftime('%Y-%m-%d %H:%M:%f', ?5, 'unixepoch') END";

/// Run before [`INSERT_ROW`] for a unique row, with the same parameters and `?12`
/// (replace): finds the live row holding the key `?10`, which a replace updates if it is
/// still waiting. No row: the key is free, and the insert follows in the same transaction
/// (this UPDATE took the write lock, so no other insert of the key can come between).
pub(crate) static UNIQUE_HOLDER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let replace = "?12 AND locked_at IS NULL";
    format!(
        "UPDATE delayed_jobs SET \
             handler = CASE WHEN {replace} THEN ?2 ELSE handler END, \
             priority = CASE WHEN {replace} THEN ?3 ELSE priority END, \
             queue = CASE WHEN {replace} THEN ?4 ELSE queue END, \
             run_at = CASE WHEN {replace} THEN {RUN_AT} ELSE run_at END, \
             max_run_time = CASE WHEN {replace} THEN ?7 ELSE max_run_time END, \
             concurrency_key = CASE WHEN {replace} THEN ?8 ELSE concurrency_key END, \
             concurrency_limit = CASE WHEN {replace} THEN ?9 ELSE concurrency_limit END, \
             updated_at = CASE WHEN {replace} THEN {NOW} ELSE updated_at END \
         WHERE unique_key = ?10 \
         RETURNING id, CASE WHEN {replace} THEN 2 ELSE 1 END AS outcome"
    )
});

/// A row's insert parameters, in [`INSERT_ROW`]'s order, and for a unique row `?12`.
struct RowParams<'a> {
    name: &'a str,
    handler: &'a str,
    priority: i32,
    queue: Option<&'a str>,
    at: Option<f64>,
    delay: f64,
    max_run_time: Option<i32>,
    concurrency_key: Option<&'a str>,
    concurrency_limit: Option<i32>,
    unique_key: Option<&'a str>,
    until_done: bool,
    /// `Some(replace)` for a unique row.
    replace: Option<bool>,
}

impl<'a> RowParams<'a> {
    fn of(row: &'a NewJob) -> Self {
        let (at, delay) = row.run_at.values();
        RowParams {
            name: row.name,
            handler: &row.handler,
            priority: row.priority,
            queue: row.queue.as_deref(),
            at,
            delay,
            max_run_time: row.max_run_time,
            concurrency_key: row.concurrency.as_ref().map(|(key, _)| key.as_str()),
            concurrency_limit: row.concurrency.as_ref().map(|(_, limit)| *limit),
            unique_key: row.unique.as_ref().map(|u| u.key.as_str()),
            until_done: row.unique.as_ref().is_some_and(|u| u.until_done),
            replace: row.unique.as_ref().map(|u| u.replace),
        }
    }
    fn rusqlite(&self) -> Vec<&dyn rusqlite::ToSql> {
        vec![
            &self.name,
            &self.handler,
            &self.priority,
            &self.queue,
            &self.at,
            &self.delay,
            &self.max_run_time,
            &self.concurrency_key,
            &self.concurrency_limit,
            &self.unique_key,
            &self.until_done,
        ]
    }
}

/// Inserts rows through the caller's sqlx connection (or the connection of its transaction),
/// with [`INSERT_ROW`]; several rows in one transaction of their own, or a savepoint inside
/// the caller's.
#[cfg(feature = "sqlx-sqlite")]
pub(crate) async fn insert_sqlx(
    conn: &mut sqlx::SqliteConnection,
    rows: &[NewJob],
) -> Result<Vec<EnqueueOutcome>> {
    use sqlx::Connection as _;
    async fn each(
        conn: &mut sqlx::SqliteConnection,
        rows: &[NewJob],
    ) -> sqlx::Result<Vec<EnqueueOutcome>> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let p = RowParams::of(row);
            let bind = |sql: &'static str| {
                sqlx::query_as::<_, (i64, i32)>(sql)
                    .bind(p.name)
                    .bind(p.handler)
                    .bind(p.priority)
                    .bind(p.queue)
                    .bind(p.at)
                    .bind(p.delay)
                    .bind(p.max_run_time)
                    .bind(p.concurrency_key)
                    .bind(p.concurrency_limit)
                    .bind(p.unique_key)
                    .bind(p.until_done)
            };
            // `fetch_all`, never `fetch_one`/`fetch_optional`: those stop sqlx's SQLite
            // worker after the first row and drop the error of the statement's end and, in
            // autocommit, of its commit (see `returning`).
            let held = match p.replace {
                Some(replace) => bind(UNIQUE_HOLDER.as_str())
                    .bind(replace)
                    .fetch_all(&mut *conn)
                    .await?
                    .pop(),
                None => None,
            };
            let (id, code) = match held {
                Some(held) => held,
                None => bind(INSERT_ROW.as_str())
                    .fetch_all(&mut *conn)
                    .await?
                    .pop()
                    .ok_or(sqlx::Error::RowNotFound)?,
            };
            out.push(EnqueueOutcome::from_code(id, code));
        }
        Ok(out)
    }
    let inserted = if needs_transaction(rows) {
        let mut tx = conn.begin().await.map_err(crate::error::from_sqlx)?;
        match each(&mut tx, rows).await {
            Ok(out) => tx.commit().await.map(|()| out),
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
) -> Result<Vec<EnqueueOutcome>> {
    use super::InsertedId as Inserted;
    use diesel::sql_types::{Bool, Double, Integer, Nullable, Text};
    use diesel::{Connection as _, RunQueryDsl as _};
    let each = |conn: &mut diesel::SqliteConnection| {
        rows.iter()
            .map(|row| {
                let p = RowParams::of(row);
                let bind = |sql: &'static str| {
                    diesel::sql_query(sql)
                        .bind::<Text, _>(p.name)
                        .bind::<Text, _>(p.handler)
                        .bind::<Integer, _>(p.priority)
                        .bind::<Nullable<Text>, _>(p.queue)
                        .bind::<Nullable<Double>, _>(p.at)
                        .bind::<Double, _>(p.delay)
                        .bind::<Nullable<Integer>, _>(p.max_run_time)
                        .bind::<Nullable<Text>, _>(p.concurrency_key)
                        .bind::<Nullable<Integer>, _>(p.concurrency_limit)
                        .bind::<Nullable<Text>, _>(p.unique_key)
                        .bind::<Bool, _>(p.until_done)
                };
                // `load`, never `get_result`: that reads one row and leaves the statement,
                // and in autocommit its commit, to a reset whose error is dropped.
                let held = match p.replace {
                    Some(replace) => bind(UNIQUE_HOLDER.as_str())
                        .bind::<Bool, _>(replace)
                        .load::<Inserted>(conn)?
                        .pop(),
                    None => None,
                };
                let r = match held {
                    Some(r) => r,
                    None => bind(INSERT_ROW.as_str())
                        .load::<Inserted>(conn)?
                        .pop()
                        .ok_or(diesel::result::Error::NotFound)?,
                };
                Ok(EnqueueOutcome::from_code(r.id, r.outcome))
            })
            .collect::<diesel::QueryResult<Vec<EnqueueOutcome>>>()
    };
    let inserted = if needs_transaction(rows) {
        conn.transaction(each)
    } else {
        each(conn)
    };
    inserted.map_err(crate::error::from_diesel)
}

fn insert_rows(conn: &Connection, rows: &[NewJob]) -> rusqlite::Result<Vec<EnqueueOutcome>> {
    let mut insert = conn.prepare_cached(&INSERT_ROW)?;
    let mut out = Vec::with_capacity(rows.len());
    let read = |r: &rusqlite::Row<'_>| Ok(EnqueueOutcome::from_code(r.get(0)?, r.get(1)?));
    for row in rows {
        let p = RowParams::of(row);
        let mut values = p.rusqlite();
        let held = match &p.replace {
            Some(replace) => {
                values.push(replace);
                let mut holder = conn.prepare_cached(&UNIQUE_HOLDER)?;
                let held = returning(&mut holder, &values[..], read)?.pop();
                values.pop();
                held
            }
            None => None,
        };
        match held {
            Some(held) => out.push(held),
            None => out.push(
                returning(&mut insert, &values[..], read)?
                    .pop()
                    .ok_or(rusqlite::Error::QueryReturnedNoRows)?,
            ),
        }
    }
    Ok(out)
}

/// Runs a writing statement with a `RETURNING` clause to its end and reads every row it
/// returns. Reading only the first row (rusqlite's `query_row`) leaves the statement to be
/// finished by its reset, whose error rusqlite drops: in autocommit the reset is the commit,
/// so a commit that failed on a full disk returned the id of a row that was never stored.
fn returning<T>(
    statement: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    statement.query_map(params, read)?.collect()
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
            conn.prepare(&format!("SELECT {CRON_COLUMNS} FROM dj_cron LIMIT 0"))?;
            conn.prepare("SELECT minute, succeeded, failed FROM dj_throughput LIMIT 0")?;
            conn.prepare("SELECT n FROM dj_wakeups LIMIT 0")?;
            Ok(())
        })
    }

    fn check_writable(&self) -> Result<()> {
        // SQLite opens a file it cannot write read-only, and fails only at the first write.
        if self.pool.get()?.is_readonly(DatabaseName::Main)? {
            return Err(read_only(&self.shown, Some(&self.path), false));
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

    fn job_insert_many(&self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
        self.run(|conn| insert_committed(conn, rows))
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
                returning(
                    &mut *tx.prepare_cached(&CLAIM_LIMITED)?,
                    params![p.worker, min, max, queues, p.limit as i64, window],
                    job_row,
                )
            })?
        } else {
            Vec::new()
        };
        let room = p.limit - jobs.len();
        if room > 0 {
            jobs.extend(self.run(|conn| {
                returning(
                    &mut *conn.prepare_cached(&CLAIM)?,
                    params![p.worker, min, max, queues, room as i64],
                    job_row,
                )
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
        self.waking(|tx| {
            tx.prepare_cached(
                "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL \
                 WHERE id IN (SELECT value FROM json_each(?1)) AND locked_by = ?2",
            )?
            .execute(params![ids_json(ids), worker])
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
        self.waking(|tx| {
            tx.prepare_cached(
                "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL, crashes = crashes + 1 \
                 WHERE id IN (SELECT value FROM json_each(?1)) AND locked_by = ?2",
            )?
            .execute(params![ids_json(ids), worker])
        })
    }

    fn job_unlock_worker(&self, worker: &str) -> Result<u64> {
        self.waking(|tx| {
            tx.execute(
                "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL WHERE locked_by = ?1",
                [worker],
            )
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

    /// Every change makes rows claimable: idle workers are woken.
    fn job_update(&self, filter: &JobFilter, change: filter::Change) -> Result<u64> {
        let statement = filter::update(&DIALECT, filter, change);
        self.waking(|tx| tx.execute(&statement.sql, params(&statement)))
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

    fn job_count_by_locker(&self) -> Result<Vec<(Option<String>, i64)>> {
        let sql = filter::lockers(&DIALECT);
        self.run(|conn| {
            let mut statement = conn.prepare_cached(&sql)?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
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
        if !paused {
            // Idle workers look again at once.
            return Ok(self.waking(|tx| {
                tx.prepare_cached("DELETE FROM dj_paused_queues WHERE queue = ?1")?
                    .execute(params![queue])
            })? > 0);
        }
        self.run(|conn| {
            let n = conn
                .prepare_cached("INSERT OR IGNORE INTO dj_paused_queues (queue) VALUES (?1)")?
                .execute(params![queue])?;
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

    fn throughput_add(&self, succeeded: i64, failed: i64) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO dj_throughput (minute, succeeded, failed) \
                 VALUES (strftime('%Y-%m-%d %H:%M:00.000', 'now'), ?1, ?2) \
                 ON CONFLICT (minute) DO UPDATE SET \
                     succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed",
            )?
            .execute(params![succeeded, failed])?;
            tx.execute(
                "DELETE FROM dj_throughput WHERE minute < strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 day')",
                [],
            )?;
            Ok(())
        })
    }

    fn throughput(&self, minutes: u32) -> Result<Vec<(SystemTime, i64, i64)>> {
        self.run(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT unixepoch(minute, 'subsec'), succeeded, failed FROM dj_throughput \
                 WHERE minute > strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%d minutes', ?1)) \
                 ORDER BY minute",
            )?;
            let rows = statement.query_map([minutes], |r| {
                Ok((time(r.get::<_, f64>(0)?), r.get(1)?, r.get(2)?))
            })?;
            rows.collect()
        })
    }

    fn cron_upsert(&self, s: &ScheduleDef, next: Option<SystemTime>) -> Result<()> {
        let next = next.map(unix_secs);
        self.run(|conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO dj_cron (name, expression, tz, missed, job_name, handler, queue, \
                                      priority, from_code, next_fire_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, {next}) \
                 ON CONFLICT (name) DO UPDATE SET \
                     next_fire_at = CASE WHEN dj_cron.expression = excluded.expression \
                                          AND dj_cron.tz = excluded.tz \
                                         THEN dj_cron.next_fire_at ELSE excluded.next_fire_at END, \
                     expression = excluded.expression, tz = excluded.tz, missed = excluded.missed, \
                     job_name = excluded.job_name, handler = excluded.handler, \
                     queue = excluded.queue, priority = excluded.priority, \
                     from_code = excluded.from_code, updated_at = {NOW} \
                 WHERE (dj_cron.expression, dj_cron.tz, dj_cron.missed, dj_cron.job_name, \
                        dj_cron.handler, dj_cron.queue, dj_cron.priority, dj_cron.from_code) \
                       IS NOT (excluded.expression, excluded.tz, excluded.missed, \
                        excluded.job_name, excluded.handler, excluded.queue, \
                        excluded.priority, excluded.from_code)",
                next = stored_time(10),
            ))?
            .execute(params![
                s.name,
                s.expression,
                s.tz,
                s.missed.as_str(),
                s.job_name,
                s.handler,
                s.queue,
                s.priority,
                s.from_code,
                next
            ])?;
            Ok(())
        })
    }

    fn cron_remove(&self, name: &str) -> Result<bool> {
        self.run(|conn| Ok(conn.execute("DELETE FROM dj_cron WHERE name = ?1", [name])? > 0))
    }

    fn cron_list(&self) -> Result<Vec<ScheduleRow>> {
        self.run(|conn| {
            let mut statement =
                conn.prepare_cached(&format!("SELECT {CRON_COLUMNS} FROM dj_cron ORDER BY name"))?;
            let rows = statement.query_map([], schedule_row)?;
            rows.collect()
        })
    }

    fn cron_due(&self) -> Result<(SystemTime, Vec<ScheduleRow>)> {
        self.run(|conn| {
            let now: f64 = conn.query_row("SELECT unixepoch('now', 'subsec')", [], |r| r.get(0))?;
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {CRON_COLUMNS} FROM dj_cron \
                 WHERE next_fire_at IS NOT NULL AND unixepoch(next_fire_at, 'subsec') <= ?1 \
                 ORDER BY name"
            ))?;
            let rows = statement.query_map([now], schedule_row)?;
            Ok((time(now), rows.collect::<rusqlite::Result<_>>()?))
        })
    }

    fn cron_fire(&self, fire: &CronFire<'_>) -> Result<bool> {
        let CronFire {
            name,
            expected,
            next,
            last,
            jobs,
        } = *fire;
        self.write(|tx| {
            let moved = tx
                .prepare_cached(&format!(
                    "UPDATE dj_cron SET next_fire_at = {next}, \
                         last_fire_at = coalesce({last}, last_fire_at), updated_at = {NOW} \
                     WHERE name = ?1 AND next_fire_at = {expected}",
                    expected = stored_time(2),
                    next = stored_time(3),
                    last = stored_time(4),
                ))?
                .execute(params![
                    name,
                    unix_secs(expected),
                    next.map(unix_secs),
                    last.map(unix_secs)
                ])?;
            if moved == 0 {
                return Ok(false);
            }
            insert_rows(tx, jobs)?;
            Ok(true)
        })
    }

    /// SQLite has no LISTEN: an idle worker reads the wake-up number ([`SqliteStore::wakeups`])
    /// every `WAKEUP_POLL` (two rows, no write) and claims as soon as it moves (an insert, a
    /// retry, a run now, an unlock, a release or a resumed queue, from any process), else after
    /// `timeout`.
    fn wait_for_jobs(&self, timeout: Duration, stop: &crate::stop::StopFlag) -> bool {
        let deadline = Instant::now() + timeout;
        let Some(seen) = self.wakeups() else {
            stop.sleep(timeout);
            return false;
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || stop.is_set() {
                return false;
            }
            stop.sleep(left.min(WAKEUP_POLL));
            if self.wakeups().is_some_and(|now| now != seen) {
                return !stop.is_set();
            }
        }
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

/// A stored schedule's columns, times as unix seconds.
const CRON_COLUMNS: &str = "name, expression, tz, missed, job_name, handler, queue, priority, \
     from_code, unixepoch(last_fire_at, 'subsec'), unixepoch(next_fire_at, 'subsec')";

/// A time as SQLite stores it, from unix seconds (`?N`).
fn stored_time(param: usize) -> String {
    format!("strftime('%Y-%m-%d %H:%M:%f', ?{param}, 'unixepoch')")
}

fn schedule_row(row: &Row<'_>) -> rusqlite::Result<ScheduleRow> {
    Ok(ScheduleRow {
        name: row.get(0)?,
        expression: row.get(1)?,
        tz: row.get(2)?,
        missed: Missed::parse(&row.get::<_, String>(3)?),
        job_name: row.get(4)?,
        handler: row.get(5)?,
        queue: row.get(6)?,
        priority: row.get(7)?,
        from_code: row.get(8)?,
        last_fire_at: row.get::<_, Option<f64>>(9)?.map(time),
        next_fire_at: row.get::<_, Option<f64>>(10)?.map(time),
    })
}

/// SQLite's spelling of the filtered commands.
const DIALECT: filter::Dialect = filter::Dialect {
    now: NOW,
    placeholder: |n| format!("?{n}"),
    position: "instr",
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
