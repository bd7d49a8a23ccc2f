//! Opening a file: the pool's connections (busy timeout, WAL, `synchronous`, the statement
//! cache), a file this process can only read (read commands still work; writes fail with
//! [`Error::ReadOnly`]), and the typed errors of a missing table, a read-only file and a full
//! disk.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, DatabaseName, ErrorCode, OpenFlags};

use super::sql;
use crate::error::{Error, Result};
use crate::store::pool::Manage;

/// `synchronous` setting: NORMAL (the default; durable across process crashes, and in WAL mode
/// loses at most the last commits on power loss) or FULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Synchronous {
    Normal,
    Full,
}

/// How long a connection waits for another one's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many prepared statements a connection keeps.
const STATEMENT_CACHE: usize = 64;

pub(crate) struct Manager {
    pub(super) path: PathBuf,
    pub(super) synchronous: Synchronous,
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
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
        match conn.query_row(sql::READABLE, [], |_| Ok(())) {
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
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }
}

/// A path as the path of a `file:` URI: `%`, `?` and `#` escaped.
fn uri_path(path: &Path) -> String {
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

/// The typed error for a missing table, a file that cannot be written, or a full disk.
/// `conn` is the connection the error happened on, `path` the file, when known.
pub(super) fn typed_error(
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
pub(super) fn read_only(database: &str, path: Option<&Path>, wal_commits: bool) -> Error {
    let (what, fix) = unwritable(path);
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

/// What cannot be written, and what to do about it.
fn unwritable(path: Option<&Path>) -> (String, String) {
    let both = || {
        (
            "the file, or the directory holding it (where SQLite creates its `-wal` and `-shm` \
             files), cannot be written"
                .to_owned(),
            "give this user write access to both, or mount them read-write".to_owned(),
        )
    };
    let Some(path) = path else {
        return both();
    };
    if !writable(path) {
        return (
            "the file cannot be written".to_owned(),
            "give this user write access to it, or mount it read-write".to_owned(),
        );
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if writable(dir) {
        return both();
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
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
