//! A small connection pool shared by the backends: connections are opened on demand, kept
//! when returned healthy, and dropped when broken. Both backends' clients are blocking, so a
//! checkout is simply exclusive use of one connection until the guard drops.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use crate::error::Result;

/// How a backend opens and checks its connections.
pub(crate) trait Manage: Send + Sync + 'static {
    type Conn: Send + 'static;
    fn open(&self) -> Result<Self::Conn>;
    /// False once a connection can no longer be used (the server closed it, say).
    fn healthy(&self, conn: &mut Self::Conn) -> bool;
}

pub(crate) struct Pool<M: Manage> {
    manager: M,
    idle: Mutex<Vec<M::Conn>>,
    max_idle: usize,
}

impl<M: Manage> Pool<M> {
    pub(crate) fn new(manager: M, max_idle: usize) -> Self {
        Pool {
            manager,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn manager(&self) -> &M {
        &self.manager
    }

    /// An idle connection, or a new one.
    pub(crate) fn get(&self) -> Result<Pooled<'_, M>> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.manager.open()?,
        };
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
        })
    }
}

impl<M: Manage> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("max_idle", &self.max_idle)
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
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.pool.max_idle {
            idle.push(conn);
        }
    }
}
