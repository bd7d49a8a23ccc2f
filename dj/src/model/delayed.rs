//! The builder a job's `.delay()` returns: the options of the row it will become.

use std::time::{Duration, SystemTime};

use super::{OnDuplicate, RunAt};

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
    pub(crate) job: J,
    pub(crate) options: RowOptions,
}

/// What the builder sets over the job type's own options (`None`: the type's).
#[derive(Debug, Clone, Default)]
pub(crate) struct RowOptions {
    pub(crate) priority: Option<i32>,
    pub(crate) queue: Option<String>,
    pub(crate) run_at: RunAt,
    pub(crate) unique_key: Option<String>,
    pub(crate) on_duplicate: Option<OnDuplicate>,
    pub(crate) unique_until_done: Option<bool>,
    pub(crate) concurrency: Option<(String, u32)>,
    pub(crate) sequence: Option<String>,
    pub(crate) rate: Option<super::Rate>,
}

impl<J> Delayed<J> {
    pub(crate) fn new(job: J) -> Self {
        Delayed {
            job,
            options: RowOptions::default(),
        }
    }
    /// Lower runs first; the default is the type's `#[job(priority = ..)]`, else 0.
    pub fn priority(mut self, priority: i32) -> Self {
        self.options.priority = Some(priority);
        self
    }
    /// The queue; the default is the type's `#[job(queue = ..)]`, else none.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.options.queue = Some(queue.into());
        self
    }
    /// Not before this time.
    pub fn run_at(mut self, when: SystemTime) -> Self {
        self.options.run_at = RunAt::At(when);
        self
    }
    /// Not before this long from now (by the database's clock).
    pub fn run_in(mut self, delay: Duration) -> Self {
        self.options.run_at = RunAt::In(delay);
        self
    }
    /// Makes this a unique job: while a job of this type with this key is waiting (ready or
    /// scheduled), enqueueing another inserts nothing and returns the waiting job's id
    /// ([`Delayed::enqueue_outcome`] says it was a duplicate). The key is freed when the job
    /// starts (see [`Delayed::unique_until_done`]); overrides `#[job(unique = ..)]`.
    /// Race-free: the database's unique index decides, not a check before the insert.
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.options.unique_key = Some(key.into());
        self
    }
    /// What a duplicate of a unique job does: [`OnDuplicate::Skip`] (the default) or
    /// [`OnDuplicate::Replace`].
    pub fn on_duplicate(mut self, policy: OnDuplicate) -> Self {
        self.options.on_duplicate = Some(policy);
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
        self.options.unique_until_done = Some(true);
        self
    }
    /// At most `limit` jobs with this key run at once, across every worker (e.g. one sync
    /// per customer: `.concurrency_key(format!("customer:{id}"), 1)`). The key is shared by
    /// every job type that uses it; overrides `#[job(concurrency_key = .., concurrency = ..)]`.
    pub fn concurrency_key(mut self, key: impl Into<String>, limit: u32) -> Self {
        self.options.concurrency = Some((key.into(), limit));
        self
    }
    /// Puts the job in a sequence: jobs with the same sequence key run one at a time, across
    /// every worker, in the order they were enqueued, whatever their priorities and types. A
    /// job waits while any earlier job of its sequence is still in the table and has not
    /// failed for good: waiting, running, or retrying. One that fails for good (kept with
    /// `failed_at`, or deleted) leaves the sequence, and the next one runs; retrying it
    /// (`worker retry`) makes it the head again. A sequence is a kind of concurrency key (a
    /// job has one or the other), so it shares that namespace: use keys of their own.
    pub fn sequence(mut self, key: impl Into<String>) -> Self {
        self.options.sequence = Some(key.into());
        self
    }
    /// A fairness key (a tenant): jobs with a key are claimed round-robin between keys, so
    /// that one key's backlog does not hold another key's jobs behind it; it bounds nothing
    /// (as many of its jobs run at once as workers have places). The key is shared by every
    /// job type that uses it, in the namespace of [`Delayed::concurrency_key`], which it
    /// replaces (a concurrency key is claimed round-robin too); overrides
    /// `#[job(fairness_key = ..)]`.
    pub fn fairness_key(self, key: impl Into<String>) -> Self {
        self.concurrency_key(key, u32::MAX)
    }
    /// A rate limit: at most `rate.starts()` jobs of this job's key start in any window of
    /// `rate.period()`, across every worker. The key is its concurrency or sequence key if it
    /// has one, else its type's own (every job of the type); overrides `#[job(rate = ..)]`.
    /// A job held back by its rate waits in the table, counting no attempt.
    pub fn rate_limit(mut self, rate: super::Rate) -> Self {
        self.options.rate = Some(rate);
        self
    }
    /// A rate limit on a key shared by every job type that uses it, with no bound on how many
    /// run at once (e.g. one partner's API: `.rate_key("partner-api", "100/min".parse()?)`).
    /// Shares the namespace of [`Delayed::concurrency_key`], which it replaces.
    pub fn rate_key(self, key: impl Into<String>, rate: super::Rate) -> Self {
        self.concurrency_key(key, u32::MAX).rate_limit(rate)
    }
}
