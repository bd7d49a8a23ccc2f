//! [`Db`]: the handle applications and workers share. Opened from a URL, it pools
//! connections to the backend the URL names.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};
use crate::model::{
    Cancel, JobFilter, JobId, JobRow, QueueStats, Rate, RateLimit, RateScope, ScheduleRow,
    WorkerRow,
};
#[cfg(feature = "tokio")]
use crate::model::{EnqueueOutcome, NewJob};
use crate::stop::StopFlag;
use crate::store::filter::Change;
use crate::store::Options;
use crate::store::Store;

/// Rows one prune statement deletes at most.
pub(crate) const PRUNE_BATCH: i64 = 1_000;

/// The SQLite file used when `DATABASE_URL` is not set: `dj.sqlite3` in the working
/// directory, so an app and its worker started in one directory agree with no setup.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:dj.sqlite3";

/// A handle on the job table: cheap to clone, safe to share between threads. Clones share
/// one connection pool.
///
/// ```
/// # fn main() -> Result<(), dj::Error> {
/// # let dir = std::env::temp_dir().join(format!("dj-doc-db-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let url = format!("sqlite:{}", dir.join("jobs.db").display());
/// use std::time::Duration;
///
/// let db = dj::Db::builder(&url)        // e.g. postgres://dj@db/app, or sqlite:jobs.db
///     .pool_size(4)
///     .pool_timeout(Duration::from_secs(2))
///     .connect()?;                      // fail now, not at the first enqueue
/// db.migrate()?;                        // creates or upgrades the table; safe to repeat
/// assert_eq!(db.count_jobs(&dj::JobFilter::default())?, 0);
/// for queue in db.stats()? {
///     println!("{:?}: {} ready", queue.queue, queue.ready);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Db {
    store: Arc<dyn Store>,
    /// The URL as given, password included: what a worker's state function is told.
    url: Arc<str>,
}

/// Settings of a [`Db`] beyond its URL: [`Db::builder`]. Each overrides the URL's key of the
/// same name (`pool_size`, `pool_timeout`, `connect_timeout`, `statement_timeout`,
/// `application_name`, `listen_url`); unset ones keep the URL's value or dj's default.
#[derive(Debug, Clone, Default)]
#[must_use = "a DbBuilder does nothing until `.open()` or `.connect()`"]
pub struct DbBuilder {
    url: String,
    options: Options,
}

impl DbBuilder {
    /// Connections this `Db` keeps open at most (10).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.options.pool_size = Some(n.max(1));
        self
    }
    /// How long a caller waits for a connection when all are in use (10 s).
    pub fn pool_timeout(mut self, wait: Duration) -> Self {
        self.options.pool_timeout = Some(wait);
        self
    }
    /// PostgreSQL: the deadline for connecting, the login handshake included (5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = Some(timeout);
        self
    }
    /// PostgreSQL: the deadline for each of dj's operations (30 s).
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.options.statement_timeout = Some(timeout);
        self
    }
    /// PostgreSQL: the `application_name` the server shows in `pg_stat_activity`.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.options.application_name = Some(name.into());
        self
    }
    /// PostgreSQL: where a worker LISTENs for wake-ups, when the `Db`'s URL goes through a
    /// transaction pooler (`?pooler=transaction`), which cannot hold a LISTEN: a direct URL
    /// of the same database, `postgres://dj@db-primary:5432/app`. Without it such a worker
    /// polls every `sleep_delay`.
    pub fn listen_url(mut self, url: impl Into<String>) -> Self {
        self.options.listen_url = Some(url.into());
        self
    }
    /// The `Db`, connecting lazily (on first use), as [`Db::open`].
    pub fn open(self) -> Result<Db> {
        let url = self.url.trim();
        let store: Arc<dyn Store> =
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                open_postgres(url, &self.options)?
            } else if let Some(rest) = url.strip_prefix("sqlite:") {
                open_sqlite(rest, &self.options)?
            } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
                open_mysql(url, &self.options)?
            } else {
                return Err(Error::BadUrl {
                    url: url.to_owned(),
                    reason: "the scheme must be `postgres://`, `postgresql://`, `mysql://` or \
                         `sqlite:`"
                        .to_owned(),
                });
            };
        Ok(Db {
            store,
            url: url.into(),
        })
    }
    /// The `Db`, connected now: fails at start-up, not at the first enqueue, when the
    /// database does not answer (within the connect timeout).
    pub fn connect(self) -> Result<Db> {
        let db = self.open()?;
        db.ping()?;
        Ok(db)
    }
}

impl Db {
    /// Opens `postgres://...` (or `postgresql://...`), `mysql://...` (or `mariadb://...`,
    /// with feature `mysql`) or `sqlite:path[?synchronous=full]`.
    /// Nothing is connected until first use; [`Db::builder`] sets the pool and deadlines and
    /// can connect at once.
    pub fn open(url: &str) -> Result<Db> {
        Db::builder(url).open()
    }

    /// A `Db` with settings beyond the URL:
    /// `Db::builder(url).pool_size(20).statement_timeout(secs(10)).connect()?`.
    pub fn builder(url: &str) -> DbBuilder {
        DbBuilder {
            url: url.to_owned(),
            options: Options::default(),
        }
    }

    /// Opens `DATABASE_URL`, or [`DEFAULT_DATABASE_URL`] when it is unset or empty (the
    /// quick start's SQLite file in the working directory), unless `DJ_REQUIRE_DATABASE_URL`
    /// is set, which makes it [`Db::from_env_strict`].
    pub fn from_env() -> Result<Db> {
        Db::open(&resolve_database_url(None)?.0)
    }

    /// Opens `DATABASE_URL`, and refuses to fall back to a SQLite file when it is unset: for
    /// production code, where a typo in the environment must not mean an empty database.
    pub fn from_env_strict() -> Result<Db> {
        match chosen_url(None) {
            (url, UrlSource::Environment) => Db::open(&url),
            _ => Err(Error::Invalid(
                "DATABASE_URL is not set; set it to `postgres://user@host/db` or \
                 `sqlite:path/to/file.db`"
                    .to_owned(),
            )),
        }
    }

    /// Checks that the database answers (one round trip), within the connect and statement
    /// deadlines.
    pub fn ping(&self) -> Result<()> {
        self.store.now().map(|_| ())
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

    /// How far running job `id` says it is ([`crate::Context::progress`]), as its worker
    /// last wrote it (at most a second behind); `None` if it has not reported, or has ended.
    pub fn job_progress(&self, id: JobId) -> Result<Option<crate::Progress>> {
        Ok(self.store.progress_of(&[id])?.pop().map(|(_, p)| p))
    }

    /// The progress of those of `ids` that have reported some (see [`Db::job_progress`]).
    pub fn jobs_progress(&self, ids: &[JobId]) -> Result<Vec<(JobId, crate::Progress)>> {
        self.store.progress_of(ids)
    }

    /// Job `id`'s failed attempts, oldest first: each one's number, worker, start, end and
    /// error (the attempt history; `last_error` on the row is the latest). A job keeps its
    /// latest [`crate::MAX_ATTEMPTS_KEPT`]; they are kept for the workers' `result_retention`
    /// after the job's row is gone. Empty for a job that never failed.
    pub fn job_attempts(&self, id: JobId) -> Result<Vec<crate::Attempt>> {
        self.store.attempt_list(id)
    }

    /// How many rows match `filter`.
    pub fn count_jobs(&self, filter: &JobFilter) -> Result<i64> {
        self.store.job_count(filter)
    }

    /// Per-queue counts by state, and the age of the oldest ready job.
    pub fn stats(&self) -> Result<Vec<QueueStats>> {
        self.store.job_stats()
    }

    /// Deletes matching rows; returns how many.
    pub fn delete_jobs(&self, filter: &JobFilter) -> Result<u64> {
        self.store.job_delete(filter)
    }

    /// Makes matching unlocked rows (failed ones included) ready now with attempts reset;
    /// returns how many.
    pub fn retry_jobs(&self, filter: &JobFilter) -> Result<u64> {
        self.store.job_update(filter, Change::RetryNow)
    }

    /// Makes matching waiting rows (scheduled ones) ready now, attempts kept; returns how
    /// many.
    pub fn run_jobs_now(&self, filter: &JobFilter) -> Result<u64> {
        self.store.job_update(filter, Change::RunNow)
    }

    /// Releases the locks of matching running rows, without charging an attempt (for a lock
    /// a dead worker left; a live worker's outcome for such a row is then discarded);
    /// returns how many.
    pub fn unlock_jobs(&self, filter: &JobFilter) -> Result<u64> {
        self.store.job_update(filter, Change::Unlock)
    }

    /// Deletes the rows that failed for good more than `older_than` ago (kept by
    /// `destroy_failed_jobs(false)` / `--keep-failed`), in batches of 1,000 so that a large
    /// prune never holds many rows at once; returns how many. Workers do this by themselves
    /// (see [`crate::WorkerConfig::keep_failed_for`]); this is `worker prune`.
    pub fn prune_failed(&self, older_than: Duration) -> Result<u64> {
        let mut total = 0;
        loop {
            let deleted = self.store.job_prune_failed(older_than, PRUNE_BATCH)?;
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Pauses a queue: no worker claims its jobs until [`Db::resume_queue`] (running ones
    /// finish). The pause is stored in the database, so it holds across restarts and hosts.
    /// Returns false if it was paused already.
    pub fn pause_queue(&self, queue: &str) -> Result<bool> {
        crate::validate::queue_name(Some(queue))?;
        self.store.queue_pause(queue, true)
    }

    /// Resumes a paused queue (on PostgreSQL, idle workers are woken at once); returns false if
    /// it was not paused.
    pub fn resume_queue(&self, queue: &str) -> Result<bool> {
        self.store.queue_pause(queue, false)
    }

    /// Cancels a job. A waiting job fails for good at once as "cancelled" (and is kept, so
    /// `retry` can bring it back); a running one is stopped by its worker within a second
    /// ([`crate::Context::is_cancelled`] turns true, an async job's future is dropped) and
    /// fails for good as "cancelled", without retries.
    pub fn cancel(&self, id: JobId) -> Result<Cancel> {
        self.store.job_cancel(id)
    }

    /// Limits a queue to `max_running` jobs running at once across every worker (`None`
    /// removes the limit). Returns whether that changed anything.
    pub fn limit_queue(&self, queue: &str, max_running: Option<u32>) -> Result<bool> {
        crate::validate::queue_name(Some(queue))?;
        let max = match max_running {
            Some(0) => return Err(crate::Error::InvalidLimit(queue.to_owned())),
            Some(n) => Some(i32::try_from(n).unwrap_or(i32::MAX)),
            None => None,
        };
        self.store.queue_limit(queue, max)
    }

    /// The queue limits, by queue.
    pub fn queue_limits(&self) -> Result<Vec<(String, u32)>> {
        Ok(self
            .store
            .queue_limits()?
            .into_iter()
            .map(|(q, n)| (q, n.max(0) as u32))
            .collect())
    }

    /// Limits how many jobs of a queue start per period, across every worker (`None` removes
    /// the limit): at most `rate.starts()` in any window of `rate.period()`. Its jobs wait in
    /// the table, counting no attempt, until the rate allows them. Returns whether that
    /// changed anything.
    pub fn rate_limit_queue(&self, queue: &str, rate: Option<Rate>) -> Result<bool> {
        crate::validate::queue_name(Some(queue))?;
        let scope = RateScope::Queue(queue.to_owned());
        self.store.rate_limit(&scope, rate.map(Rate::stored))
    }

    /// Sets the rate limit of a stored concurrency key (as `show` prints it: a type's key is
    /// `TypeName/value`, a key of its own type `TypeName`), replacing the rate its jobs were
    /// enqueued with, or (`None`) removes it, leaving theirs. Returns whether that changed
    /// anything.
    pub fn rate_limit_key(&self, key: &str, rate: Option<Rate>) -> Result<bool> {
        if key.is_empty() {
            return Err(crate::Error::Invalid(
                "a rate limit's key is empty: give the stored concurrency key, e.g. `Sync/42`"
                    .to_owned(),
            ));
        }
        let scope = RateScope::Key(key.to_owned());
        self.store.rate_limit(&scope, rate.map(Rate::stored))
    }

    /// The rate limits set at run time: queues', then keys'.
    pub fn rate_limits(&self) -> Result<Vec<RateLimit>> {
        self.store.rate_limits()
    }

    /// Removes a schedule; returns whether there was one. (A `#[job(cron = ..)]` schedule
    /// comes back when a worker that has it in its code starts.)
    pub fn remove_schedule(&self, name: &str) -> Result<bool> {
        self.store.cron_remove(name)
    }

    /// The schedules, by name, with their last and next fire times. A `#[job(cron = ..)]`
    /// schedule is listed once a worker (or `worker cron`) with it in its code has started.
    pub fn schedules(&self) -> Result<Vec<ScheduleRow>> {
        self.store.cron_list()
    }

    /// Jobs finished per minute over the last `minutes` (at most a day): (minute, succeeded,
    /// failed), oldest first, minutes without jobs left out. Workers report at each
    /// heartbeat, so the current minute lags by up to one heartbeat interval.
    pub fn throughput(&self, minutes: u32) -> Result<Vec<(SystemTime, i64, i64)>> {
        self.store.throughput(minutes.min(24 * 60))
    }

    /// The paused queues, by name.
    pub fn paused_queues(&self) -> Result<Vec<String>> {
        self.store.queue_paused()
    }

    /// Releases every lock held by the worker named `worker`; returns how many.
    pub fn unlock_worker(&self, worker: &str) -> Result<u64> {
        self.store.job_unlock_worker(worker)
    }

    /// The registered workers (`dj_workers`), live or not yet found dead, each with the
    /// rows it holds locked now as its `running` (which `stats` counts as running in their
    /// queues; a heartbeat's own count would lag, and leave out claimed jobs). Counting them
    /// reads the table once more (no index covers `locked_by`, so that claims stay HOT
    /// updates): about 0.3 s on a million rows, so dj's own liveness reads and `/metrics` read
    /// the registrations alone.
    pub fn workers(&self) -> Result<Vec<WorkerRow>> {
        let mut workers = self.store.worker_list()?;
        let lockers: std::collections::HashMap<String, i64> = self.lockers()?.into_iter().collect();
        for worker in &mut workers {
            let held = lockers.get(&worker.name).copied().unwrap_or(0);
            worker.running = i32::try_from(held).unwrap_or(i32::MAX);
        }
        Ok(workers)
    }

    /// Worker names holding locks, with how many rows each, by name. Not part of the API:
    /// [`Db::workers`] gives each worker's count; this stays for dj's own tests.
    #[doc(hidden)]
    pub fn lockers(&self) -> Result<Vec<(String, i64)>> {
        Ok(self
            .store
            .job_count_by_locker()?
            .into_iter()
            .map(|(name, n)| (name.unwrap_or_default(), n))
            .collect())
    }

    /// Runs `probe` until it succeeds, retrying while the database is unreachable, with
    /// backoff from 0.25 s up to 10 s between tries: for at most `bound` (then
    /// [`Error::Unreachable`]), or with no bound until `stop` is set. Errors that waiting
    /// cannot fix ([`Error::is_permanent`]) return at once. `on_retry`
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
                Err(e) if e.is_permanent() => return Err(e),
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
    pub(crate) async fn insert_async(&self, rows: Vec<NewJob>) -> Result<Vec<EnqueueOutcome>> {
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

    /// The old name of [`Db::count_jobs`].
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `Db::count_jobs`: it acts on the jobs that match"
    )]
    pub fn count(&self, filter: &JobFilter) -> Result<i64> {
        self.count_jobs(filter)
    }

    /// The old name of [`Db::delete_jobs`].
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `Db::delete_jobs`: it acts on the jobs that match"
    )]
    pub fn delete(&self, filter: &JobFilter) -> Result<u64> {
        self.delete_jobs(filter)
    }

    /// The old name of [`Db::retry_jobs`].
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `Db::retry_jobs`: it acts on the jobs that match"
    )]
    pub fn retry(&self, filter: &JobFilter) -> Result<u64> {
        self.retry_jobs(filter)
    }

    /// The old name of [`Db::run_jobs_now`].
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `Db::run_jobs_now`: it acts on the jobs that match"
    )]
    pub fn run_now(&self, filter: &JobFilter) -> Result<u64> {
        self.run_jobs_now(filter)
    }

    /// The old name of [`Db::unlock_jobs`].
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `Db::unlock_jobs`: it acts on the jobs that match"
    )]
    pub fn unlock(&self, filter: &JobFilter) -> Result<u64> {
        self.unlock_jobs(filter)
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The URL this `Db` was opened with, as given (password included).
    pub(crate) fn opened_with(&self) -> &str {
        &self.url
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Db").field(&self.store.describe()).finish()
    }
}

/// The URL to use: an explicit one, else `DATABASE_URL`, else the default SQLite file (empty
/// values count as unset).
pub fn database_url(explicit: Option<&str>) -> String {
    chosen_url(explicit).0
}

/// [`database_url`], and where it came from.
fn chosen_url(explicit: Option<&str>) -> (String, UrlSource) {
    let given = |url: Option<String>| url.filter(|u| !u.trim().is_empty());
    if let Some(url) = given(explicit.map(str::to_owned)) {
        return (url, UrlSource::Explicit);
    }
    if let Some(url) = given(std::env::var("DATABASE_URL").ok()) {
        return (url, UrlSource::Environment);
    }
    (DEFAULT_DATABASE_URL.to_owned(), UrlSource::Default)
}

/// Where the database URL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlSource {
    /// `--database-url`, or an explicit argument.
    Explicit,
    /// `DATABASE_URL`.
    Environment,
    /// Neither: [`DEFAULT_DATABASE_URL`].
    Default,
}

#[cfg(feature = "cli")]
impl UrlSource {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            UrlSource::Explicit => "from --database-url",
            UrlSource::Environment => "from DATABASE_URL",
            UrlSource::Default => "the default: DATABASE_URL is not set",
        }
    }
}

/// [`database_url`], saying where it came from; with `DJ_REQUIRE_DATABASE_URL` set (to
/// anything but `0` or empty), the default is refused.
pub(crate) fn resolve_database_url(explicit: Option<&str>) -> Result<(String, UrlSource)> {
    let chosen = chosen_url(explicit);
    let required =
        std::env::var("DJ_REQUIRE_DATABASE_URL").is_ok_and(|v| !v.is_empty() && v != "0");
    if chosen.1 == UrlSource::Default && required {
        return Err(Error::Invalid(
            "DATABASE_URL is not set and DJ_REQUIRE_DATABASE_URL forbids the SQLite default; \
             set DATABASE_URL (or --database-url) to `postgres://user@host/db` or `sqlite:path`"
                .to_owned(),
        ));
    }
    Ok(chosen)
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
    if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        #[cfg(feature = "mysql")]
        return Ok(crate::store::mysql::schema_sql());
        #[cfg(not(feature = "mysql"))]
        return Err(Error::BackendDisabled { backend: "mysql" });
    }
    Db::open(url).map(|_| String::new())
}

#[cfg(feature = "postgres")]
fn open_postgres(url: &str, options: &Options) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(crate::store::postgres::PgStore::open(
        url, options,
    )?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_url: &str, _options: &Options) -> Result<Arc<dyn Store>> {
    Err(Error::BackendDisabled {
        backend: "postgres",
    })
}

#[cfg(feature = "sqlite")]
fn open_sqlite(rest: &str, options: &Options) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(crate::store::sqlite::SqliteStore::open(
        rest, options,
    )?))
}

#[cfg(feature = "mysql")]
fn open_mysql(url: &str, options: &Options) -> Result<Arc<dyn Store>> {
    // The driver reads `mysql://`; `mariadb://` is the same server protocol.
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    };
    Ok(Arc::new(crate::store::mysql::MysqlStore::open(
        &url, options,
    )?))
}

#[cfg(not(feature = "mysql"))]
fn open_mysql(_url: &str, _options: &Options) -> Result<Arc<dyn Store>> {
    Err(Error::BackendDisabled { backend: "mysql" })
}

#[cfg(not(feature = "sqlite"))]
fn open_sqlite(_rest: &str, _options: &Options) -> Result<Arc<dyn Store>> {
    Err(Error::BackendDisabled { backend: "sqlite" })
}
