//! The SQLite backend's connection pool: bounded, with a checkout wait. Connections are opened
//! on demand up to `pool_size`, kept when returned healthy, and dropped when broken; a caller
//! that finds all of them in use waits up to `pool_timeout`, then gets
//! [`Error::PoolExhausted`]. (PostgreSQL has a pool of its own, `postgres_pool.rs`, for its async connections.)
//!
//! Hand-written because the pool crates for blocking clients (r2d2) retry a failing open until
//! the checkout wait is over and reduce its error to text, where dj must return the open's own
//! error at once, typed (a read-only file is [`Error::ReadOnly`], not a timeout).

// Only the SQLite backend pools with it; the limits serve both.
#![cfg_attr(not(feature = "sqlite"), allow(dead_code))]

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How many connections a `Db` may hold, and how long a checkout waits: the URL's
/// `pool_size` and `pool_timeout`, on both backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolLimits {
    pub(crate) size: usize,
    pub(crate) timeout: Duration,
}

/// How long dj waits for a database server (PostgreSQL, MySQL). Set in the URL
/// (`?connect_timeout=5&statement_timeout=30s`, beside the pool's `pool_size` and
/// `pool_timeout`); dj takes its own keys out before the driver reads the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) struct Limits {
    /// Connecting, TLS and the login handshake together (a driver's own connect timeout
    /// bounds only the socket).
    pub(crate) connect: Duration,
    /// One operation of dj's: a statement, or the statements of one transaction.
    pub(crate) statement: Duration,
    /// Connections one `Db` keeps open (a PostgreSQL worker's LISTEN connection is apart).
    pub(crate) pool: PoolLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(5),
            statement: Duration::from_secs(30),
            pool: PoolLimits::default(),
        }
    }
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            size: 10,
            timeout: Duration::from_secs(10),
        }
    }
}

impl PoolLimits {
    /// A [`crate::DbBuilder`]'s settings, over the URL's.
    pub(crate) fn apply(&mut self, options: &super::Options) {
        if let Some(size) = options.pool_size {
            self.size = size;
        }
        if let Some(timeout) = options.pool_timeout {
            self.timeout = timeout;
        }
    }

    /// Reads `key=value` if it is one of the pool's URL options: `Some(Ok(()))` when taken,
    /// `Some(Err(..))` when its value is bad, `None` when the key is not the pool's.
    pub(crate) fn take(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
        match key {
            "pool_size" => Some(match value.parse() {
                Ok(n) if n > 0 => {
                    self.size = n;
                    Ok(())
                }
                _ => Err(format!(
                    "`pool_size` must be a whole number of connections, at least 1, not `{value}`"
                )),
            }),
            "pool_timeout" => Some(
                crate::duration::parse_duration(value)
                    .map(|d| self.timeout = d)
                    .map_err(|e| format!("`pool_timeout`: {e}")),
            ),
            _ => None,
        }
    }
}

/// How a backend opens and checks its connections.
pub(crate) trait Manage: Send + Sync + 'static {
    type Conn: Send + 'static;
    fn open(&self) -> Result<Self::Conn>;
    /// False once a connection can no longer be used (the server closed it, say).
    fn healthy(&self, conn: &mut Self::Conn) -> bool;
}

pub(crate) struct Pool<M: Manage> {
    manager: M,
    limits: PoolLimits,
    /// What the pool's `database` is called in errors.
    shown: String,
    state: Mutex<State<M::Conn>>,
    returned: Condvar,
}

struct State<C> {
    idle: Vec<C>,
    /// Connections open: idle ones, checked-out ones, and ones being opened.
    open: usize,
}

impl<M: Manage> Pool<M> {
    pub(crate) fn new(manager: M, limits: PoolLimits, shown: String) -> Self {
        Pool {
            manager,
            limits,
            shown,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<M::Conn>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection, or a new one while fewer than `size` are open, or the first one
    /// returned within `timeout`.
    pub(crate) fn get(&self) -> Result<Pooled<'_, M>> {
        let deadline = Instant::now() + self.limits.timeout;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(self.pooled(conn));
            }
            if state.open < self.limits.size {
                state.open += 1;
                drop(state);
                return match self.manager.open() {
                    Ok(conn) => Ok(self.pooled(conn)),
                    Err(e) => {
                        self.forget();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::PoolExhausted {
                    database: self.shown.clone(),
                    size: self.limits.size,
                    waited: self.limits.timeout,
                });
            }
            state = self
                .returned
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn pooled(&self, conn: M::Conn) -> Pooled<'_, M> {
        Pooled {
            pool: self,
            conn: Some(conn),
        }
    }

    /// A connection closed (or never opened): its place is free.
    fn forget(&self) {
        self.lock().open -= 1;
        self.returned.notify_one();
    }
}

impl<M: Manage> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("limits", &self.limits)
            .finish()
    }
}

/// A checked-out connection; goes back to the pool on drop if still healthy.
pub(crate) struct Pooled<'a, M: Manage> {
    pool: &'a Pool<M>,
    conn: Option<M::Conn>,
}

impl<M: Manage> Deref for Pooled<'_, M> {
    type Target = M::Conn;
    fn deref(&self) -> &M::Conn {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl<M: Manage> DerefMut for Pooled<'_, M> {
    fn deref_mut(&mut self) -> &mut M::Conn {
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl<M: Manage> Drop for Pooled<'_, M> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if std::thread::panicking() || !self.pool.manager.healthy(&mut conn) {
            drop(conn);
            self.pool.forget();
            return;
        }
        self.pool.lock().idle.push(conn);
        self.pool.returned.notify_one();
    }
}
