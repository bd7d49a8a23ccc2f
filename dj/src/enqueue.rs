//! Enqueueing: `job.delay()` gives a [`Delayed`] builder; `.enqueue(target)` inserts one row,
//! [`enqueue_many`] inserts many in one statement per batch. A target is the pooled [`Db`]
//! or the caller's own open transaction, so a job can commit or roll back with the app's data.

use std::time::{Duration, SystemTime};

use crate::db::Db;
use crate::error::Result;
use crate::job::Job;
use crate::registry::handler_of;

/// The id of an enqueued job (its `delayed_jobs.id`).
pub type JobId = i64;

/// A job on its way into the table: set options, then call [`Delayed::enqueue`].
///
/// ```
/// use std::time::Duration;
/// use dj::{Job, Perform};
/// # use serde::{Deserialize, Serialize};
///
/// #[derive(Job, Serialize, Deserialize)]
/// #[job(queue = "mail")]
/// struct Remind {
///     user_id: i64,
/// }
/// # impl Perform for Remind {
/// #     type Error = std::io::Error;
/// #     fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> { Ok(()) }
/// # }
///
/// # fn main() -> Result<(), dj::Error> {
/// # let dir = std::env::temp_dir().join(format!("dj-doc-delayed-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display()))?;
/// # db.migrate()?;
/// let id = Remind { user_id: 7 }
///     .delay()
///     .priority(-5)                       // lower runs first
///     .queue("urgent")                    // instead of the type's "mail"
///     .run_in(Duration::from_secs(3600))  // by the database's clock
///     .enqueue(&db)?;
/// let row = db.job(id)?.expect("stored");
/// assert_eq!((row.priority, row.queue.as_deref()), (-5, Some("urgent")));
///
/// let ids = dj::enqueue_many(&db, (1..=3).map(|user_id| Remind { user_id }))?;
/// assert_eq!(ids.len(), 3);               // all or none
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a delayed job does nothing until `.enqueue(..)` is called"]
pub struct Delayed<J> {
    job: J,
    priority: Option<i32>,
    queue: Option<String>,
    run_at: RunAt,
    unique_key: Option<String>,
    on_duplicate: Option<OnDuplicate>,
    unique_until_done: Option<bool>,
    concurrency: Option<(String, u32)>,
}

/// What an enqueue of a unique job does when a job with its key is already waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDuplicate {
    /// Keep the waiting job as it is; the new one is not inserted (the default).
    #[default]
    Skip,
    /// The waiting job takes the new one's payload, priority, queue and run time (its
    /// attempts and last error stay). A job already running is never changed.
    Replace,
}

/// The result of [`Delayed::enqueue_outcome`]: which row the job is, and whether it is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// A new row.
    Inserted(JobId),
    /// A unique job whose key a waiting job holds: nothing was inserted or changed; this is
    /// the waiting job's id.
    Duplicate(JobId),
    /// A unique job with [`OnDuplicate::Replace`]: the waiting job (this id) took the new
    /// payload and run time.
    Replaced(JobId),
}

impl EnqueueOutcome {
    /// What every backend's insert returns beside each id: 0 inserted, 1 a duplicate of the
    /// job holding the key, 2 that job replaced.
    pub(crate) fn from_code(id: JobId, code: i32) -> Self {
        match code {
            0 => EnqueueOutcome::Inserted(id),
            2 => EnqueueOutcome::Replaced(id),
            _ => EnqueueOutcome::Duplicate(id),
        }
    }
    /// The id of the row: the new one, or the waiting job's.
    pub fn id(self) -> JobId {
        match self {
            EnqueueOutcome::Inserted(id)
            | EnqueueOutcome::Duplicate(id)
            | EnqueueOutcome::Replaced(id) => id,
        }
    }
    /// Whether a job with the same unique key was already waiting (so no row was inserted).
    pub fn is_duplicate(self) -> bool {
        !matches!(self, EnqueueOutcome::Inserted(_))
    }
}

/// When a new row becomes ready. Relative times are added to the database's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunAt {
    Now,
    In(Duration),
    At(SystemTime),
}

impl RunAt {
    /// As every backend's insert binds it: an absolute time in unix seconds (or none), and
    /// seconds to add to the database's now. Plain floats, so that every driver binds them
    /// the same way with no time crate.
    pub(crate) fn values(self) -> (Option<f64>, f64) {
        match self {
            RunAt::Now => (None, 0.0),
            RunAt::In(delay) => (None, delay.as_secs_f64()),
            RunAt::At(when) => (Some(unix_secs(when)), 0.0),
        }
    }
}

/// A time as unix seconds, as the stores bind times (negative before 1970).
pub(crate) fn unix_secs(when: SystemTime) -> f64 {
    match when.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// A row ready to insert: what every backend's insert takes. (Public only because the sealed
/// [`EnqueueTarget`] names it; nothing outside dj can build one.)
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct NewJob {
    pub(crate) name: &'static str,
    pub(crate) handler: String,
    pub(crate) priority: i32,
    pub(crate) queue: Option<String>,
    pub(crate) run_at: RunAt,
    /// The job's own `max_run_time` in seconds, if it has one; it also bounds its lock.
    pub(crate) max_run_time: Option<i32>,
    /// A unique job's stored key and rules.
    pub(crate) unique: Option<Unique>,
    /// The stored concurrency key and how many with it may run at once.
    pub(crate) concurrency: Option<(String, i32)>,
}

/// A unique job's stored key (scoped by the job's name), and what a duplicate does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unique {
    pub(crate) key: String,
    /// Held while running and through retries too, not only while waiting to start.
    pub(crate) until_done: bool,
    pub(crate) replace: bool,
}

/// Keys longer than this are stored as a SHA-256 digest, so that an index entry stays small
/// whatever the payload (a key built from a large field, or `unique = true` over the whole
/// payload).
const LONGEST_STORED_KEY: usize = 128;

/// A key as stored: `prefix` (the job's name, for keys scoped to one type) and the key,
/// digested when long.
pub(crate) fn stored_key(prefix: Option<&str>, key: &str) -> String {
    let key = if key.len() > LONGEST_STORED_KEY {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    } else {
        key.to_owned()
    };
    match prefix {
        Some(prefix) => format!("{prefix}/{key}"),
        None => key,
    }
}

impl<J: Job> Delayed<J> {
    pub(crate) fn new(job: J) -> Self {
        Delayed {
            job,
            priority: None,
            queue: None,
            run_at: RunAt::Now,
            unique_key: None,
            on_duplicate: None,
            unique_until_done: None,
            concurrency: None,
        }
    }
    /// Lower runs first; the default is the type's `#[job(priority = ..)]`, else 0.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }
    /// The queue; the default is the type's `#[job(queue = ..)]`, else none.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    /// Not before this time.
    pub fn run_at(mut self, when: SystemTime) -> Self {
        self.run_at = RunAt::At(when);
        self
    }
    /// Not before this long from now (by the database's clock).
    pub fn run_in(mut self, delay: Duration) -> Self {
        self.run_at = RunAt::In(delay);
        self
    }
    /// Makes this a unique job: while a job of this type with this key is waiting (ready or
    /// scheduled), enqueueing another inserts nothing and returns the waiting job's id
    /// ([`Delayed::enqueue_outcome`] says it was a duplicate). The key is freed when the job
    /// starts (see [`Delayed::unique_until_done`]); overrides `#[job(unique = ..)]`.
    /// Race-free: the database's unique index decides, not a check before the insert.
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }
    /// What a duplicate of a unique job does: [`OnDuplicate::Skip`] (the default) or
    /// [`OnDuplicate::Replace`].
    pub fn on_duplicate(mut self, policy: OnDuplicate) -> Self {
        self.on_duplicate = Some(policy);
        self
    }
    /// Debounce: run `window` after the *last* enqueue of this key. The same as
    /// `.on_duplicate(OnDuplicate::Replace).run_in(window)`: each enqueue while the job waits
    /// moves it (and its payload) to `window` from now.
    pub fn debounce(self, window: Duration) -> Self {
        self.on_duplicate(OnDuplicate::Replace).run_in(window)
    }
    /// Holds the unique key while the job runs and through its retries too, until it
    /// succeeds or fails for good (by default the key is freed when the job starts, so that a
    /// change made while it runs can enqueue the next one).
    pub fn unique_until_done(mut self) -> Self {
        self.unique_until_done = Some(true);
        self
    }
    /// At most `limit` jobs with this key run at once, across every worker (e.g. one sync
    /// per customer: `.concurrency_key(format!("customer:{id}"), 1)`). The key is shared by
    /// every job type that uses it; overrides `#[job(concurrency_key = .., concurrency = ..)]`.
    pub fn concurrency_key(mut self, key: impl Into<String>, limit: u32) -> Self {
        self.concurrency = Some((key.into(), limit));
        self
    }
    /// Inserts the job and returns its id; nothing runs yet. With the caller's transaction as
    /// target, the job exists only if that transaction commits. For a unique job whose key
    /// is held, the id of the job holding it.
    pub fn enqueue<T: EnqueueTarget>(self, target: T) -> Result<JobId> {
        self.enqueue_outcome(target).map(EnqueueOutcome::id)
    }
    /// [`Delayed::enqueue`], saying whether the job is new or a duplicate of a unique job.
    pub fn enqueue_outcome<T: EnqueueTarget>(self, mut target: T) -> Result<EnqueueOutcome> {
        match prepare(vec![self], || target.db()) {
            Prepared::Inline(ids) => Ok(ids?[0]),
            Prepared::Rows(rows) => Ok(target.insert_jobs(&rows?)?[0]),
        }
    }

    pub(crate) fn into_row(self) -> Result<NewJob> {
        let handler = handler_of(&self.job)?;
        let queue = self.queue.or_else(|| J::OPTIONS.queue.map(str::to_owned));
        crate::validate::queue_name(queue.as_deref())?;
        let options = J::OPTIONS;
        let unique = self
            .unique_key
            .or_else(|| self.job.__unique_key())
            .map(|key| Unique {
                key: stored_key(Some(J::NAME), &key),
                until_done: self.unique_until_done.unwrap_or(options.unique_until_done),
                replace: self.on_duplicate.unwrap_or(options.on_duplicate) == OnDuplicate::Replace,
            });
        let concurrency = match self.concurrency {
            Some((key, limit)) => Some((stored_key(None, &key), limit)),
            None => self.job.__concurrency_key().map(|key| {
                (
                    stored_key(Some(J::NAME), &key),
                    options.concurrency.unwrap_or(1),
                )
            }),
        };
        let concurrency = match concurrency {
            Some((key, 0)) => return Err(crate::Error::InvalidLimit(key)),
            Some((key, limit)) => Some((key, i32::try_from(limit).unwrap_or(i32::MAX))),
            None => None,
        };
        Ok(NewJob {
            name: J::NAME,
            handler,
            priority: self.priority.or(options.priority).unwrap_or(0),
            queue,
            run_at: self.run_at,
            max_run_time: crate::Perform::max_run_time(&self.job)
                .or(options.max_run_time)
                .map(|d| i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)),
            unique,
            concurrency,
        })
    }
}

/// Enqueues many jobs, all or none (one transaction, or a savepoint inside the caller's), in
/// one statement per batch of [`crate::INSERT_BATCH`] rows, and returns their ids in order.
/// Items are job values or [`Delayed`] builders. A unique job that is a duplicate (of a
/// waiting job, or of an earlier item in the same call) gives the id of the job holding its
/// key.
pub fn enqueue_many<T, I, J>(target: T, jobs: I) -> Result<Vec<JobId>>
where
    T: EnqueueTarget,
    I: IntoIterator,
    I::Item: Into<Delayed<J>>,
    J: Job,
{
    let outcomes = enqueue_many_outcomes(target, jobs)?;
    Ok(outcomes.into_iter().map(EnqueueOutcome::id).collect())
}

/// [`enqueue_many`], saying for each job whether it is new or a duplicate of a unique job.
pub fn enqueue_many_outcomes<T, I, J>(mut target: T, jobs: I) -> Result<Vec<EnqueueOutcome>>
where
    T: EnqueueTarget,
    I: IntoIterator,
    I::Item: Into<Delayed<J>>,
    J: Job,
{
    let delayed: Vec<Delayed<J>> = jobs.into_iter().map(Into::into).collect();
    match prepare(delayed, || target.db()) {
        Prepared::Inline(ids) => ids,
        Prepared::Rows(rows) => target.insert_jobs(&rows?),
    }
}

/// Jobs made ready for any target: performed at once in `dj::testing`'s inline mode, else
/// validated and serialized into rows.
pub(crate) enum Prepared {
    Inline(Result<Vec<EnqueueOutcome>>),
    Rows(Result<Vec<NewJob>>),
}

pub(crate) fn prepare<J: Job>(
    delayed: Vec<Delayed<J>>,
    db: impl FnOnce() -> Option<Db>,
) -> Prepared {
    if crate::testing::inline_active() {
        let db = db();
        return Prepared::Inline(
            delayed
                .iter()
                .map(|d| {
                    crate::testing::perform_inline(&d.job, db.clone()).map(EnqueueOutcome::Inserted)
                })
                .collect(),
        );
    }
    Prepared::Rows(delayed.into_iter().map(Delayed::into_row).collect())
}

impl<J: Job> From<J> for Delayed<J> {
    fn from(job: J) -> Self {
        Delayed::new(job)
    }
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Where a job can be enqueued: `&Db`, or an open transaction or connection of a backend
/// (`&mut postgres::Transaction`, `&mut postgres::Client`, `&rusqlite::Connection`,
/// `&rusqlite::Transaction`; with feature `diesel-postgres` or `diesel-sqlite`,
/// `&mut diesel::PgConnection` or `&mut diesel::SqliteConnection`, inside whatever diesel
/// transaction is open on it).
pub trait EnqueueTarget: sealed::Sealed {
    #[doc(hidden)]
    fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>>;
    #[doc(hidden)]
    fn db(&self) -> Option<Db> {
        None
    }
}

impl sealed::Sealed for &Db {}
impl EnqueueTarget for &Db {
    fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
        self.store().job_insert_many(rows)
    }
    fn db(&self) -> Option<Db> {
        Some((*self).clone())
    }
}

#[cfg(feature = "postgres")]
mod postgres_targets {
    use super::*;
    use crate::store::postgres as pg;

    impl sealed::Sealed for &mut postgres::Transaction<'_> {}
    impl EnqueueTarget for &mut postgres::Transaction<'_> {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            pg::insert_jobs(&mut **self, rows)
        }
    }
    impl sealed::Sealed for &mut postgres::Client {}
    impl EnqueueTarget for &mut postgres::Client {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            pg::insert_jobs(&mut **self, rows)
        }
    }
}

#[cfg(feature = "diesel-postgres")]
mod diesel_postgres_targets {
    use super::*;

    impl sealed::Sealed for &mut diesel::PgConnection {}
    impl EnqueueTarget for &mut diesel::PgConnection {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            crate::store::postgres::insert_diesel(self, rows)
        }
    }
}

#[cfg(feature = "diesel-sqlite")]
mod diesel_sqlite_targets {
    use super::*;

    impl sealed::Sealed for &mut diesel::SqliteConnection {}
    impl EnqueueTarget for &mut diesel::SqliteConnection {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            crate::store::sqlite::insert_diesel(self, rows)
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite_targets {
    use super::*;
    use crate::store::sqlite as lite;

    impl sealed::Sealed for &rusqlite::Connection {}
    impl EnqueueTarget for &rusqlite::Connection {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            lite::insert_jobs(self, rows)
        }
    }
    impl sealed::Sealed for &rusqlite::Transaction<'_> {}
    impl EnqueueTarget for &rusqlite::Transaction<'_> {
        fn insert_jobs(&mut self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
            lite::insert_jobs(self, rows)
        }
    }
}
