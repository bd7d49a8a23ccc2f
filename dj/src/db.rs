//! [`Db`]: the handle applications and workers share. Opened from a URL, it pools
//! connections to the backend the URL names.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::enqueue::JobId;
use crate::error::{Error, Result};
use crate::store::{JobFilter, JobRow, QueueStats, Store, WorkerRow};
use crate::worker::StopFlag;

/// The SQLite file used when `DATABASE_URL` is not set: `dj.sqlite3` in the working
/// directory, so an app and its worker started in one directory agree with no setup.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:dj.sqlite3";

/// A handle on the job table: cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct Db {
    store: Arc<dyn Store>,
}

impl Db {
    /// Opens `postgres://...` (or `postgresql://...`) or `sqlite:path[?synchronous=full]`.
    /// Nothing is connected until first use.
    pub fn open(url: &str) -> Result<Db> {
        let url = url.trim();
        let store: Arc<dyn Store> = if url.starts_with("postgres://")
            || url.starts_with("postgresql://")
        {
            open_postgres(url)?
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            open_sqlite(rest)?
        } else {
            return Err(Error::BadUrl {
                url: url.to_owned(),
                reason: "the scheme must be `postgres://`, `postgresql://` or `sqlite:`".to_owned(),
            });
        };
        Ok(Db { store })
    }

    /// Opens `DATABASE_URL`, or [`DEFAULT_DATABASE_URL`] when it is unset or empty.
    pub fn from_env() -> Result<Db> {
        Db::open(&database_url(None))
    }

    /// Creates or upgrades the `delayed_jobs` table and indexes; safe to run again. Returns
    /// the migration versions it applied (empty when already up to date).
    pub fn migrate(&self) -> Result<Vec<u32>> {
        self.store.migrate()
    }

    /// Which database this is, with any password hidden.
    pub fn url(&self) -> String {
        self.store.describe()
    }

    /// The database's clock: the one clock dj uses for `run_at` and locks.
    pub fn now(&self) -> Result<SystemTime> {
        self.store.now()
    }

    /// Rows matching `filter`, by id.
    pub fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>> {
        self.store.job_list(filter)
    }

    /// One row by id.
    pub fn job(&self, id: JobId) -> Result<Option<JobRow>> {
        let filter = JobFilter {
            id: Some(id),
            ..JobFilter::default()
        };
        Ok(self.store.job_list(&filter)?.pop())
    }

    /// How many rows match `filter`.
    pub fn count(&self, filter: &JobFilter) -> Result<i64> {
        self.store.job_count(filter)
    }

    /// Per-queue counts by state, and the age of the oldest ready job.
    pub fn stats(&self) -> Result<Vec<QueueStats>> {
        self.store.job_stats()
    }

    /// Deletes matching rows; returns how many.
    pub fn delete(&self, filter: &JobFilter) -> Result<u64> {
        self.store.job_delete(filter)
    }

    /// Makes matching unlocked rows (failed ones included) ready now with attempts reset;
    /// returns how many.
    pub fn retry(&self, filter: &JobFilter) -> Result<u64> {
        self.store.job_retry_now(filter)
    }

    /// Releases every lock held by the worker named `worker`; returns how many.
    pub fn unlock_worker(&self, worker: &str) -> Result<u64> {
        self.store.job_unlock_worker(worker)
    }

    /// The registered workers (`dj_workers`), live or not yet found dead.
    pub fn workers(&self) -> Result<Vec<WorkerRow>> {
        self.store.worker_list()
    }

    /// Worker names holding locks, with how many rows each.
    pub fn lockers(&self) -> Result<Vec<(String, i64)>> {
        let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
        for row in self.jobs(&JobFilter {
            state: Some(crate::store::JobState::Running),
            ..JobFilter::default()
        })? {
            *counts.entry(row.locked_by.unwrap_or_default()).or_default() += 1;
        }
        Ok(counts.into_iter().collect())
    }

    /// Runs `probe` until it succeeds, retrying while the database is unreachable, with
    /// backoff from 0.25 s up to 10 s between tries: for at most `bound` (then
    /// [`Error::Unreachable`]), or with no bound until `stop` is set. Errors that waiting
    /// cannot fix (a bad URL, a missing table, a read-only file) return at once. `on_retry`
    /// hears each failure and the pause before the next try.
    pub(crate) fn wait_for<T>(
        &self,
        bound: Option<Duration>,
        stop: &StopFlag,
        probe: impl Fn(&dyn Store) -> Result<T>,
        mut on_retry: impl FnMut(&Error, Duration),
    ) -> Result<T> {
        let deadline = bound.map(|b| Instant::now() + b);
        let mut pause = Duration::from_millis(250);
        loop {
            let e = match probe(self.store()) {
                Ok(value) => return Ok(value),
                Err(
                    e
                    @ (Error::MissingTable { .. } | Error::BadUrl { .. } | Error::ReadOnly { .. }),
                ) => return Err(e),
                Err(e) if stop.is_set() => return Err(e),
                Err(e) => e,
            };
            if let (Some(bound), Some(deadline)) = (bound, deadline) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Unreachable {
                        database: self.url(),
                        waited: bound,
                        last: e.to_string(),
                    });
                }
                pause = pause.min(left);
            }
            on_retry(&e, pause);
            stop.sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(10));
        }
    }

    /// Inserts rows without blocking an async caller: PostgreSQL's insert is awaited on dj's
    /// I/O runtime, SQLite's runs on that runtime's blocking threads.
    #[cfg(feature = "tokio")]
    pub(crate) async fn insert_async(
        &self,
        rows: Vec<crate::enqueue::NewJob>,
    ) -> Result<Vec<JobId>> {
        #[cfg(all(feature = "postgres", feature = "tokio"))]
        if let Some(pg) = self.store.as_postgres() {
            return crate::io::InRuntime::new(pg.insert(&rows)).await;
        }
        let store = self.store.clone();
        match crate::io::handle()
            .spawn_blocking(move || store.job_insert_many(&rows))
            .await
        {
            Ok(inserted) => inserted,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Db").field(&self.store.describe()).finish()
    }
}

/// The URL to use: an explicit one, else `DATABASE_URL`, else the default SQLite file.
pub fn database_url(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_owned)
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// The `schema` SQL for the backend a URL names.
pub fn schema_sql(url: &str) -> Result<String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(crate::store::postgres::schema_sql());
        #[cfg(not(feature = "postgres"))]
        return Err(Error::BackendDisabled {
            backend: "postgres",
        });
    }
    if url.starts_with("sqlite:") {
        #[cfg(feature = "sqlite")]
        return Ok(crate::store::sqlite::schema_sql());
        #[cfg(not(feature = "sqlite"))]
        return Err(Error::BackendDisabled { backend: "sqlite" });
    }
    Db::open(url).map(|_| String::new())
}

#[cfg(feature = "postgres")]
fn open_postgres(url: &str) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(crate::store::postgres::PgStore::open(url)?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_url: &str) -> Result<Arc<dyn Store>> {
    Err(Error::BackendDisabled {
        backend: "postgres",
    })
}

#[cfg(feature = "sqlite")]
fn open_sqlite(rest: &str) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(crate::store::sqlite::SqliteStore::open(rest)?))
}

#[cfg(not(feature = "sqlite"))]
fn open_sqlite(_rest: &str) -> Result<Arc<dyn Store>> {
    Err(Error::BackendDisabled { backend: "sqlite" })
}
