//! A row on its way into `delayed_jobs`: its values as every backend's insert binds them,
//! and what the insert did.

use std::time::{Duration, SystemTime};

use super::RowOptions;

/// The id of an enqueued job (its `delayed_jobs.id`).
pub type JobId = i64;

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

/// The result of [`Delayed::enqueue_outcome`](crate::Delayed::enqueue_outcome): which row the job is, and whether it is new.
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
    /// job holding the key, 2 that job replaced (MySQL's insert tells them apart itself).
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum RunAt {
    #[default]
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
    /// The stored concurrency key and how many with it may run at once ([`SEQUENCE_LIMIT`]:
    /// a sequence).
    pub(crate) concurrency: Option<(String, i32)>,
    /// The rate limit of its concurrency key, if it has one.
    pub(crate) rate: Option<super::StoredRate>,
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

impl NewJob {
    /// The row of a stored handler this binary cannot load (a schedule's job whose type
    /// changed): the handler as it is, so that the job fails on its row with the load error.
    pub(crate) fn stored(name: &'static str, handler: String, options: RowOptions) -> NewJob {
        NewJob {
            name,
            handler,
            priority: options.priority.unwrap_or(0),
            queue: options.queue,
            run_at: options.run_at,
            max_run_time: None,
            unique: None,
            concurrency: None,
            rate: None,
        }
    }
}

/// The `concurrency_limit` that marks a row's key as a sequence ([`crate::Delayed::sequence`]):
/// one at a time, in id order, each waiting for every earlier row of its key that has not
/// failed for good. A limit of 0 is otherwise refused, so no plain key has it.
pub(crate) const SEQUENCE_LIMIT: i32 = 0;

/// The `concurrency_limit` of a key that only has a rate limit: no bound on how many run at
/// once.
pub(crate) const UNBOUNDED_LIMIT: i32 = i32::MAX;
