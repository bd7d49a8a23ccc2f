//! How a job becomes a row: the one function every path takes. `enqueue`, inline mode
//! (`dj::testing`), schedules made in code or with [`crate::Schedule::new`], and each firing
//! of a schedule all build their [`NewJob`] here, so a row's defaults are the same whichever
//! way it was made.

use crate::error::{Error, Result};
use crate::handler::handler_of;
use crate::job::{Job, Perform};
use crate::model::{
    stored_key, Delayed, NewJob, OnDuplicate, Rate, RowOptions, Unique, SEQUENCE_LIMIT,
    UNBOUNDED_LIMIT,
};

impl<J: Job> Delayed<J> {
    /// The row this builder makes.
    pub(crate) fn into_row(self) -> Result<NewJob> {
        row_of(&self.job, self.options)
    }
}

impl<J: Job> From<J> for Delayed<J> {
    fn from(job: J) -> Self {
        Delayed::new(job)
    }
}

/// The row `job` becomes with `options` over its type's `#[job(..)]` options: its handler,
/// queue (validated), priority, run time, `max_run_time`, unique key, concurrency key and rate.
pub(crate) fn row_of<J: Job>(job: &J, options: RowOptions) -> Result<NewJob> {
    let defaults = J::OPTIONS;
    let handler = handler_of(job)?;
    let queue = options.queue.or_else(|| defaults.queue.map(str::to_owned));
    crate::validate::queue_name(queue.as_deref())?;
    let unique = options
        .unique_key
        .or_else(|| job.__unique_key())
        .map(|key| Unique {
            key: stored_key(Some(J::NAME), &key),
            until_done: options
                .unique_until_done
                .unwrap_or(defaults.unique_until_done),
            replace: options.on_duplicate.unwrap_or(defaults.on_duplicate) == OnDuplicate::Replace,
        });
    let (concurrency, rate) = keyed(job, options.sequence, options.concurrency, options.rate)?;
    Ok(NewJob {
        name: J::NAME,
        handler,
        priority: options.priority.or(defaults.priority).unwrap_or(0),
        queue,
        run_at: options.run_at,
        max_run_time: Perform::max_run_time(job)
            .or(defaults.max_run_time)
            .map(|d| i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)),
        unique,
        concurrency,
        rate: rate.map(Rate::stored),
    })
}

/// A stored concurrency key and its limit.
type StoredKey = (String, i32);

/// The stored concurrency key and limit, and the rate: the builder's, else the type's. A
/// job with a rate and no key of its own is limited with every job of its type (its name is
/// the key, with no bound on how many run at once).
fn keyed<J: Job>(
    job: &J,
    sequence: Option<String>,
    concurrency: Option<(String, u32)>,
    rate: Option<Rate>,
) -> Result<(Option<StoredKey>, Option<Rate>)> {
    let rate = match rate {
        Some(rate) => Some(rate),
        None => J::OPTIONS
            .rate
            .map(|(starts, ms)| Rate::new(starts, std::time::Duration::from_millis(ms)))
            .transpose()?,
    };
    let concurrency = match sequence {
        Some(key) if concurrency.is_none() => Some((stored_key(None, &key), SEQUENCE_LIMIT)),
        Some(key) => {
            return Err(Error::Invalid(format!(
                "job {}: a job has a sequence (`sequence({key:?})`) or a concurrency key, \
                 not both; keep one",
                J::NAME
            )))
        }
        None => concurrency_of(job, concurrency, rate.is_some())?,
    };
    let concurrency = match concurrency {
        None if rate.is_some() => Some((J::NAME.to_owned(), UNBOUNDED_LIMIT)),
        Some((key, _)) if key.is_empty() => {
            return Err(Error::Invalid(format!(
                "job {}: its key (concurrency, sequence, fairness or rate key) is empty; give \
                 one that names what it limits, e.g. `customer:42`",
                J::NAME
            )))
        }
        keyed => keyed,
    };
    Ok((concurrency, rate))
}

/// The stored concurrency key and limit: the builder's (a key shared across types), else the
/// type's (scoped by its name; a `#[job(sequence = ..)]` type's key is a sequence). A limit of
/// 0 could never run and is refused.
fn concurrency_of<J: Job>(
    job: &J,
    set: Option<(String, u32)>,
    rated: bool,
) -> Result<Option<StoredKey>> {
    let concurrency = match set {
        Some((key, limit)) => Some((stored_key(None, &key), limit)),
        None if J::OPTIONS.sequence => {
            let key = job.__concurrency_key();
            return Ok(key.map(|key| (stored_key(Some(J::NAME), &key), SEQUENCE_LIMIT)));
        }
        None => job.__concurrency_key().map(|key| {
            (
                stored_key(Some(J::NAME), &key),
                // A key with only a rate has no bound on how many run at once.
                J::OPTIONS
                    .concurrency
                    .unwrap_or(if rated { u32::MAX } else { 1 }),
            )
        }),
    };
    match concurrency {
        Some((key, 0)) => Err(Error::InvalidLimit(key)),
        Some((key, limit)) => Ok(Some((key, i32::try_from(limit).unwrap_or(i32::MAX)))),
        None => Ok(None),
    }
}
