//! Connecting: dj's keys in a `mysql://` URL (the pool's, `connect_timeout`,
//! `statement_timeout`), the session every connection gets (UTC, deadlines), the server
//! version check, and the driver errors dj reports as its own.

use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder};

use crate::error::{Error, Result};
use crate::store::pool::{Limits, Manage, PoolLimits};
use crate::store::Options;

/// MySQL's error codes dj tells apart.
mod code {
    /// ER_NO_SUCH_TABLE.
    pub(super) const NO_SUCH_TABLE: u16 = 1146;
    /// ER_BAD_FIELD_ERROR: an unknown column.
    pub(super) const BAD_FIELD: u16 = 1054;
    /// ER_LOCK_DEADLOCK: the transaction was rolled back.
    pub(super) const DEADLOCK: u16 = 1213;
    /// ER_DUP_ENTRY.
    pub(super) const DUPLICATE: u16 = 1062;
    /// ER_RECORD_FILE_FULL, ER_DISK_FULL, and InnoDB's "table is full".
    pub(super) const FULL: [u16; 2] = [1114, 1021];
    /// ER_OPTION_PREVENTS_STATEMENT (a `read_only` server), ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
    pub(super) const READ_ONLY: [u16; 2] = [1290, 1792];
    /// MariaDB's ER_STATEMENT_TIMEOUT and MySQL's ER_QUERY_TIMEOUT; ER_LOCK_WAIT_TIMEOUT.
    pub(super) const TIMEOUT: [u16; 3] = [1969, 3024, 1205];
}

/// Opens the pool's connections.
pub(crate) struct Manager {
    opts: Opts,
    limits: Limits,
    shown: String,
}

/// The pool's manager and limits for `url`.
pub(super) fn manager(url: &str, options: &Options) -> Result<(Manager, PoolLimits)> {
    let shown = crate::store::hide_password(url);
    let bad = |reason: String| Error::BadUrl {
        url: shown.clone(),
        reason,
    };
    let (driver_url, mut limits) = split_url(url).map_err(bad)?;
    limits.pool.apply(options);
    if let Some(connect) = options.connect_timeout {
        limits.connect = connect;
    }
    if let Some(statement) = options.statement_timeout {
        limits.statement = statement;
    }
    let opts = Opts::from_url(&driver_url).map_err(|e| bad(e.to_string()))?;
    if opts.get_db_name().is_none_or(str::is_empty) {
        return Err(bad(
            "no database named: write `mysql://user@host:3306/database`".to_owned(),
        ));
    }
    let pool = limits.pool;
    Ok((
        Manager {
            opts,
            limits,
            shown,
        },
        pool,
    ))
}

/// Splits dj's keys out of the URL's query; the rest is left for the driver.
fn split_url(url: &str) -> std::result::Result<(String, Limits), String> {
    let mut limits = Limits::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), limits));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if let Some(taken) = limits.pool.take(key, value) {
            taken?;
        } else if key == "statement_timeout" || key == "connect_timeout" {
            let d = crate::duration::parse_duration(value).map_err(|e| format!("`{key}`: {e}"))?;
            if d.is_zero() {
                return Err(format!("`{key}` must be more than 0"));
            }
            if key == "connect_timeout" {
                limits.connect = d;
            } else {
                limits.statement = d;
            }
        } else {
            kept.push(pair);
        }
    }
    if kept.is_empty() {
        Ok((base.to_owned(), limits))
    } else {
        Ok((format!("{base}?{}", kept.join("&")), limits))
    }
}

/// A pooled connection, and whether a statement on it failed short of the server's answer
/// (a socket that timed out or closed), which makes it unfit to go back to the pool.
pub(crate) struct Session {
    pub(super) conn: Conn,
    pub(super) broken: bool,
}

impl Manage for Manager {
    type Conn = Session;

    fn open(&self) -> Result<Session> {
        let started = Instant::now();
        let statement = self.limits.statement;
        // The socket's reads wait a little longer than the server's own deadline, so that
        // the server's clear error arrives first; a server that stops answering still cannot
        // hold a thread past it.
        let socket = statement + Duration::from_secs(5);
        let opts = OptsBuilder::from_opts(self.opts.clone())
            .tcp_connect_timeout(Some(self.limits.connect))
            .read_timeout(Some(socket))
            .write_timeout(Some(socket));
        let mut conn = Conn::new(opts).map_err(|e| self.unreachable(e, started))?;
        // The version as the server states it (the handshake's carries a `5.5.5-` prefix on
        // MariaDB, for old clients).
        let version: String = conn
            .query_first("SELECT VERSION()")
            .map_err(|e| typed_error(e, &self.shown))?
            .unwrap_or_default();
        let mariadb = version.contains("MariaDB");
        let mut numbers = version
            .split(['.', '-'])
            .map(|n| n.parse::<u16>().unwrap_or(0));
        let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        check_version(mariadb, major, minor, &version)?;
        // The server's own deadline, and how long a row lock is waited for: MariaDB's
        // `max_statement_time` bounds every statement; MySQL's `max_execution_time` only
        // reads, so there a statement is bounded by the lock wait and the socket.
        let lock_wait = statement.as_secs().clamp(1, 3600);
        // The limited claim's walk of keys recurses once per key it looks at (up to four
        // times a claim's size), past both servers' default bound of 1,000.
        let deadline = if mariadb {
            format!(
                ", max_statement_time = {:.3}, max_recursive_iterations = 1000000",
                statement.as_secs_f64()
            )
        } else {
            format!(
                ", max_execution_time = {}, cte_max_recursion_depth = 1000000",
                statement.as_millis().max(1)
            )
        };
        // READ COMMITTED: each statement sees what committed before it, and an insert takes
        // no gap locks, so that claims and enqueues do not deadlock over index gaps.
        let session = format!(
            "SET time_zone = '+00:00', innodb_lock_wait_timeout = {lock_wait}{deadline}, \
                 sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION'; \
             SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
        );
        super::run_script(&mut conn, &session).map_err(|e| typed_error(e, &self.shown))?;
        Ok(Session {
            conn,
            broken: false,
        })
    }

    fn healthy(&self, session: &mut Session) -> bool {
        !session.broken
    }
}

impl Manager {
    /// A failed connect, as dj's typed error for a server that does not answer.
    fn unreachable(&self, e: mysql::Error, started: Instant) -> Error {
        match e {
            mysql::Error::MySqlError(_) => typed_error(e, &self.shown),
            e => Error::Unreachable {
                database: self.shown.clone(),
                waited: started.elapsed(),
                last: e.to_string(),
            },
        }
    }
}

/// MariaDB 10.6 and MySQL 8.0.1 are the first with `SKIP LOCKED`.
fn check_version(mariadb: bool, major: u16, minor: u16, version: &str) -> Result<()> {
    let (ok, needs) = if mariadb {
        ((major, minor) >= (10, 6), "MariaDB 10.6 or later")
    } else {
        (major >= 8, "MySQL 8.0 or later")
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "the server is {version}; dj needs {needs} (the first with `FOR UPDATE SKIP LOCKED`, \
             which its claims use); upgrade the server"
        )))
    }
}

/// A driver error as dj reports it: a missing table or column is [`Error::MissingTable`], a
/// full disk [`Error::DiskFull`], a read-only server [`Error::ReadOnly`], a statement past its
/// deadline [`Error::Timeout`].
pub(super) fn typed_error(e: mysql::Error, database: &str) -> Error {
    let mysql::Error::MySqlError(server) = &e else {
        return Error::Mysql(e);
    };
    match server.code {
        code::NO_SUCH_TABLE | code::BAD_FIELD => Error::MissingTable {
            database: database.to_owned(),
        },
        c if code::FULL.contains(&c) => Error::DiskFull {
            database: database.to_owned(),
        },
        c if code::READ_ONLY.contains(&c) => Error::ReadOnly {
            database: database.to_owned(),
            reason: server.message.clone(),
        },
        _ => Error::Mysql(e),
    }
}

/// Whether InnoDB rolled the transaction back as a deadlock's victim.
pub(super) fn is_deadlock(e: &Error) -> bool {
    matches!(e, Error::Mysql(mysql::Error::MySqlError(m)) if m.code == code::DEADLOCK)
}

/// Whether an insert met a row holding its unique key.
pub(super) fn is_duplicate(e: &mysql::Error) -> bool {
    matches!(e, mysql::Error::MySqlError(m) if m.code == code::DUPLICATE)
}

/// Whether a statement ran past the server's deadline or waited past the lock wait.
#[allow(dead_code)]
pub(super) fn is_timeout(e: &mysql::Error) -> bool {
    matches!(e, mysql::Error::MySqlError(m) if code::TIMEOUT.contains(&m.code))
}

#[cfg(test)]
mod tests {
    use super::{check_version, split_url};
    use std::time::Duration;

    #[test]
    fn dj_keys_leave_the_drivers() {
        let (url, limits) = split_url(
            "mysql://root@h:3306/test?pool_size=3&statement_timeout=2s&prefer_socket=false",
        )
        .unwrap();
        assert_eq!(url, "mysql://root@h:3306/test?prefer_socket=false");
        assert_eq!(limits.pool.size, 3);
        assert_eq!(limits.statement, Duration::from_secs(2));
        assert!(split_url("mysql://h/db?connect_timeout=0").is_err());
    }

    #[test]
    fn old_servers_are_refused_naming_the_version_needed() {
        assert!(check_version(true, 10, 11, "10.11.6-MariaDB").is_ok());
        let e = check_version(true, 10, 5, "10.5.2-MariaDB")
            .unwrap_err()
            .to_string();
        assert!(e.contains("MariaDB 10.6 or later"), "{e}");
        assert!(check_version(false, 8, 0, "8.0.36").is_ok());
        let e = check_version(false, 5, 7, "5.7.44")
            .unwrap_err()
            .to_string();
        assert!(e.contains("MySQL 8.0 or later"), "{e}");
    }
}
