//! The library's own errors (a job's failure is a [`crate::JobError`], not this).

use std::fmt;
use std::time::Duration;

/// What can go wrong in dj itself: configuration, the database, the registry.
///
/// `Debug` prints the same text as `Display`, so that `fn main() -> Result<(), Box<dyn
/// std::error::Error>>` ends with the message rather than a dump of the variant; match on
/// the variants to tell the cases apart.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `DATABASE_URL` (or `--database-url`) is not a URL dj understands.
    #[error("invalid database url `{url}`: {reason}; write `postgres://user@host/db`, `mysql://user@host/db` or `sqlite:path/to/file.db`")]
    BadUrl {
        /// The URL, with any password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `delayed_jobs` table (or a column of it) is missing.
    #[error("the `delayed_jobs` table is missing or out of date in {database}; run `migrate` (the worker binary's `migrate` command, or `dj::Db::migrate`) first")]
    MissingTable {
        /// Which database (URL, password hidden).
        database: String,
    },
    /// The database can be read but not written: a worker, `migrate` and the write commands
    /// need write access.
    #[error("{database} is read-only for this process: {reason}; only `jobs`, `show`, `stats` and `schema` work on a read-only database")]
    ReadOnly {
        /// Which database.
        database: String,
        /// What cannot be written (the file, or the directory where SQLite creates its
        /// `-wal` and `-shm` files), and how to give access.
        reason: String,
    },
    /// The disk (or filesystem quota) holding the database is full: the statement or its
    /// commit failed and nothing of it was stored.
    #[error("the disk holding {database} is full: nothing was written; free space on it (the database file and its write-ahead log grow as jobs are added) and try again")]
    DiskFull {
        /// Which database (or the caller's connection).
        database: String,
    },
    /// A backend that this build of dj does not include.
    #[error(
        "this build of dj has no {backend} backend; enable the `{backend}` cargo feature of `dj`"
    )]
    BackendDisabled {
        /// `postgres`, `sqlite` or `mysql`: also the feature's name.
        backend: &'static str,
    },
    /// Two job types registered one name.
    #[error("two job types are registered as `{name}`: `{first}` and `{second}`; give one of them `#[job(name = \"...\")]`")]
    DuplicateJobName {
        /// The name both registered.
        name: String,
        /// One type registering it.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// A queue limit of 0 (use `worker pause` to stop a queue, or remove the limit).
    #[error("a limit of 0 running jobs for queue `{0}` would stop it; to stop a queue use `worker pause {0}`, to remove its limit `worker limit {0} none`")]
    InvalidLimit(String),
    /// The dashboard asked to listen off loopback with no credentials.
    #[error("refusing to serve the dashboard on {0} without credentials: anyone who can reach it could retry and delete jobs; pass --auth USER:PASSWORD or set DJ_WEB_TOKEN (WebConfig::credentials), or bind 127.0.0.1")]
    InsecureBind(std::net::SocketAddr),
    /// A schedule that cannot be read (its expression or time zone).
    #[error("schedule `{name}`: {problem}")]
    InvalidSchedule {
        /// The schedule's name.
        name: String,
        /// What is wrong, and how to write it.
        problem: String,
    },
    /// A job's payload could not be turned into JSON.
    #[error("job `{name}` could not be serialized: {source}")]
    Serialize {
        /// The job's registered name.
        name: &'static str,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// The handler is larger than [`crate::MAX_HANDLER_BYTES`].
    #[error("job `{name}` serializes to {size} bytes, over dj's limit of {limit} bytes; store large data elsewhere and enqueue a key to it")]
    PayloadTooLarge {
        /// The job's registered name.
        name: &'static str,
        /// Its handler's size in bytes.
        size: usize,
        /// [`crate::MAX_HANDLER_BYTES`].
        limit: usize,
    },
    /// An argument that dj rejects before it reaches the database.
    #[error("{0}")]
    Invalid(String),
    /// No job with this id.
    #[error("no job with id {0}")]
    NotFound(i64),
    /// An awaited job failed for good ([`crate::JobResult::Failed`]).
    #[error("job {id} failed: {error}")]
    JobFailed {
        /// The job's id.
        id: i64,
        /// Its last error.
        error: String,
    },
    /// An awaited job has no result to give.
    #[error("job {id} has no result: {why}")]
    NoResult {
        /// The job's id.
        id: i64,
        /// Why: not finished within the wait, or gone without a result.
        why: &'static str,
    },
    /// [`crate::Context::complete_in`] found the job no longer held by its worker: the
    /// worker was declared dead (a stale heartbeat), or the job was released or cancelled.
    /// Its transaction must not commit; the job runs again elsewhere.
    #[error("job {id} is no longer held by worker {worker} (the worker was declared dead, or the job was released or cancelled): its transaction must not commit; return this error from `perform` so that the transaction rolls back (the job runs again elsewhere)")]
    NotHeld {
        /// The job's id.
        id: i64,
        /// The worker that ran it.
        worker: String,
    },
    /// The PostgreSQL backend failed.
    #[cfg(feature = "postgres")]
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    /// The SQLite backend failed.
    #[cfg(feature = "sqlite")]
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The MySQL / MariaDB backend failed.
    #[cfg(feature = "mysql")]
    #[error("mysql: {0}")]
    Mysql(#[from] mysql::Error),
    /// The caller's sqlx connection failed.
    #[cfg(any(
        feature = "sqlx-postgres",
        feature = "sqlx-sqlite",
        feature = "sqlx-mysql"
    ))]
    #[error("sqlx: {0}")]
    Sqlx(sqlx::Error),
    /// The caller's diesel connection failed.
    #[cfg(any(
        feature = "diesel-postgres",
        feature = "diesel-sqlite",
        feature = "diesel-mysql"
    ))]
    #[error("diesel: {0}")]
    Diesel(diesel::result::Error),
    /// The database did not answer within the wait allowed for it.
    #[error("{database} did not answer within {}: {last}; check that it is running and that the url is right, or wait longer with `--wait-for-database` (`WorkerConfig::database_wait` for a worker built in code)", humantime::format_duration(*.waited))]
    Unreachable {
        /// Which database.
        database: String,
        /// How long dj waited.
        waited: Duration,
        /// The last attempt's error.
        last: String,
    },
    /// The server did not answer within a deadline: connecting (with the login handshake),
    /// or one of dj's statements.
    #[error("{database} did not answer {what} within {}; check that the server is up and not overloaded, or allow longer with `connect_timeout` / `statement_timeout` in the url (e.g. `?connect_timeout=10&statement_timeout=60s`)", humantime::format_duration(*.after))]
    Timeout {
        /// Which database.
        database: String,
        /// What ran out of time: "to a connection attempt" or "a statement".
        what: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// Every connection of the `Db`'s pool stayed in use for the whole checkout wait.
    #[error("all {size} connections of the pool for {database} stayed in use for {}; raise `pool_size` in the url (e.g. `?pool_size=20`), share the `Db` among fewer threads, or wait longer with `pool_timeout`", humantime::format_duration(*.waited))]
    PoolExhausted {
        /// Which database.
        database: String,
        /// The pool's `pool_size`.
        size: usize,
        /// Its `pool_timeout`.
        waited: Duration,
    },
    /// I/O (signals, pid files, logs).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The worker's state function ([`crate::StateFn`]: `dj::main!(state)`,
    /// [`crate::Worker::state_with`]) returned an error, so the worker did not start.
    #[error("the worker's state function failed, so the worker did not start: {}", with_causes(&**.0))]
    State(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An error's message and each cause's, joined by `: `; a cause its error's message already
/// ends with (as sqlx's and anyhow's often do) is not repeated.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// `Result` with dj's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The server's own words (message, detail, hint) where `postgres::Error` alone says only
/// "db error".
#[cfg(feature = "postgres")]
fn postgres_message(e: &postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return e.to_string();
    };
    let mut text = format!("{}: {}", db.severity(), db.message());
    if let Some(detail) = db.detail() {
        text.push_str(&format!(" (detail: {detail})"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!(" (hint: {hint})"));
    }
    if prepared_statement_lost(e) {
        text.push_str(
            "; behind a transaction pooler (PgBouncer's pool_mode = transaction), add \
             `pooler=transaction` to the url so that dj names no prepared statements",
        );
    }
    text
}

/// A named prepared statement the server does not have, or has from someone else: what a
/// transaction pooler does to statements prepared on one of its server connections and used
/// on another. Waiting does not fix it; the url's `pooler=transaction` does.
#[cfg(feature = "postgres")]
fn prepared_statement_lost(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|code| {
        *code == SqlState::DUPLICATE_PSTATEMENT || *code == SqlState::INVALID_SQL_STATEMENT_NAME
    })
}

impl Error {
    /// An error that waiting for the database cannot fix: a bad url, a missing table, a
    /// read-only file, a pooler the url does not declare.
    pub(crate) fn is_permanent(&self) -> bool {
        match self {
            Error::MissingTable { .. } | Error::BadUrl { .. } | Error::ReadOnly { .. } => true,
            #[cfg(feature = "postgres")]
            Error::Postgres(e) => prepared_statement_lost(e),
            _ => false,
        }
    }
}

/// A sqlx error, with a missing table named as [`Error::MissingTable`].
#[cfg(any(
    feature = "sqlx-postgres",
    feature = "sqlx-sqlite",
    feature = "sqlx-mysql"
))]
pub(crate) fn from_sqlx(e: sqlx::Error) -> Error {
    let missing = match &e {
        sqlx::Error::Database(db) => {
            // PostgreSQL's undefined table and column, MySQL's; SQLite's words for the same.
            matches!(
                db.code().as_deref(),
                Some("42P01" | "42703" | "42S02" | "42S22")
            ) || db.message().starts_with("no such table")
                || db.message().contains("has no column named")
        }
        _ => false,
    };
    // SQLite's SQLITE_FULL (13), PostgreSQL's disk_full.
    let full = matches!(&e, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("13" | "53100")));
    callers_error(missing, full, || Error::Sqlx(e))
}

/// A diesel error, with a missing table named as [`Error::MissingTable`].
#[cfg(any(
    feature = "diesel-postgres",
    feature = "diesel-sqlite",
    feature = "diesel-mysql"
))]
pub(crate) fn from_diesel(e: diesel::result::Error) -> Error {
    let missing = match &e {
        diesel::result::Error::DatabaseError(_, info) => {
            let message = info.message();
            (message.starts_with("relation ") && message.ends_with("does not exist"))
                || message.starts_with("no such table")
                || message.contains("does not exist") && message.starts_with("column ")
                // MySQL's ER_NO_SUCH_TABLE and ER_BAD_FIELD_ERROR.
                || (message.starts_with("Table ") && message.ends_with("doesn't exist"))
                || message.starts_with("Unknown column ")
        }
        _ => false,
    };
    // SQLite's words for SQLITE_FULL, MySQL's for ER_RECORD_FILE_FULL (diesel keeps no error
    // code).
    let full = matches!(&e, diesel::result::Error::DatabaseError(_, info)
        if info.message() == "database or disk is full"
            || (info.message().starts_with("The table ") && info.message().ends_with(" is full")));
    callers_error(missing, full, || Error::Diesel(e))
}

/// An error on the caller's own connection: a missing table or a full disk named as such,
/// else the driver's error as it is.
#[cfg(any(
    feature = "sqlx-postgres",
    feature = "sqlx-sqlite",
    feature = "sqlx-mysql",
    feature = "diesel-postgres",
    feature = "diesel-sqlite",
    feature = "diesel-mysql"
))]
fn callers_error(missing: bool, full: bool, other: impl FnOnce() -> Error) -> Error {
    if missing {
        Error::MissingTable {
            database: "the caller's connection".to_owned(),
        }
    } else if full {
        Error::DiskFull {
            database: "the caller's database".to_owned(),
        }
    } else {
        other()
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn debug_is_the_message() {
        let e = Error::MissingTable {
            database: "sqlite:jobs.db".to_owned(),
        };
        assert_eq!(format!("{e:?}"), e.to_string());
        assert!(format!("{e:?}").starts_with("the `delayed_jobs` table is missing"));
        // What `fn main() -> Result<(), Box<dyn std::error::Error>>` prints on failure.
        let boxed: Box<dyn std::error::Error> = Box::new(Error::NotFound(7));
        assert_eq!(format!("{boxed:?}"), "no job with id 7");
    }

    #[test]
    fn state_error_gives_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("{0}")]
        struct Wraps(&'static str, #[source] std::io::Error);
        let cause = || std::io::Error::other("connection refused");
        // A message that says its cause already (sqlx's do), and one that does not.
        let said = Error::State(Box::new(Wraps("connecting: connection refused", cause())));
        let unsaid = Error::State(Box::new(Wraps("connecting", cause())));
        let prefix = "the worker's state function failed, so the worker did not start: ";
        assert_eq!(
            said.to_string(),
            format!("{prefix}connecting: connection refused")
        );
        assert_eq!(
            unsaid.to_string(),
            format!("{prefix}connecting: connection refused")
        );
    }
}
