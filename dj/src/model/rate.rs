//! Rate limits: at most N starts per period, for a key's jobs or a queue's.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::rules::rate::{check_rate, parse_rate};

/// At most `starts` jobs start in any window of `period`, across every worker: a rate limit
/// (`#[job(rate = "20/s")]`, [`crate::Delayed::rate_limit`], [`crate::Db::rate_limit_queue`],
/// `worker rate`). Written `STARTS/PERIOD`: `"20/s"`, `"100/min"`, `"5/10s"`, `"1000/h"`.
///
/// ```
/// use std::time::Duration;
/// let rate: dj::Rate = "100/min".parse()?;
/// assert_eq!(rate, dj::Rate::new(100, Duration::from_secs(60))?);
/// assert_eq!(rate.to_string(), "100/min");
/// assert_eq!("5/10s".parse::<dj::Rate>()?.to_string(), "5/10s");
/// # Ok::<(), dj::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    starts: u32,
    period: Duration,
}

impl Rate {
    /// `starts` per `period`: at least one start, in a period from 1 ms to one day (a rate's
    /// starts are remembered for one period), counted to the millisecond.
    pub fn new(starts: u32, period: Duration) -> Result<Rate> {
        check_rate(starts, period).map_err(Error::Invalid)?;
        Ok(Rate {
            starts,
            period: Duration::from_millis(period.as_millis() as u64),
        })
    }

    /// `starts` per second.
    pub fn per_second(starts: u32) -> Result<Rate> {
        Rate::new(starts, Duration::from_secs(1))
    }

    /// `starts` per minute.
    pub fn per_minute(starts: u32) -> Result<Rate> {
        Rate::new(starts, Duration::from_secs(60))
    }

    /// How many jobs may start in one period.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// As stored: starts and the period in milliseconds (both at most `i32::MAX`, checked).
    pub(crate) fn stored(self) -> StoredRate {
        StoredRate {
            max_starts: self.starts as i32,
            period_ms: self.period.as_millis() as i32,
        }
    }

    /// From its stored columns.
    pub(crate) fn from_stored(max_starts: i32, period_ms: i32) -> Rate {
        Rate {
            starts: max_starts.max(1) as u32,
            period: Duration::from_millis(period_ms.max(1) as u64),
        }
    }
}

impl FromStr for Rate {
    type Err = Error;
    fn from_str(text: &str) -> Result<Rate> {
        let (starts, period) = parse_rate(text).map_err(Error::Invalid)?;
        Rate::new(starts, period)
    }
}

/// As written: `20/s`, `100/min`, `1000/h`, `5/d` for one unit, else the period in dj's
/// duration grammar (`5/10s`, `3/500ms`); it parses back to the same rate.
impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_millis() {
            1_000 => "s",
            60_000 => "min",
            3_600_000 => "h",
            86_400_000 => "d",
            _ => {
                return write!(
                    f,
                    "{}/{}",
                    self.starts,
                    humantime::format_duration(self.period)
                )
            }
        };
        write!(f, "{}/{unit}", self.starts)
    }
}

/// A rate as a row or `dj_rate_limits` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredRate {
    pub(crate) max_starts: i32,
    pub(crate) period_ms: i32,
}

/// What a rate limit set at run time applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateScope {
    /// Every job of this queue.
    Queue(String),
    /// Every job with this stored concurrency key (replacing the rate its rows carry).
    Key(String),
}

impl RateScope {
    /// The stored kind: `queue` or `key`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RateScope::Queue(_) => "queue",
            RateScope::Key(_) => "key",
        }
    }
    /// The queue's or key's name.
    pub fn name(&self) -> &str {
        match self {
            RateScope::Queue(name) | RateScope::Key(name) => name,
        }
    }
}

impl fmt::Display for RateScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// A rate limit set at run time ([`crate::Db::rate_limits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// What it limits.
    pub scope: RateScope,
    /// The rate.
    pub rate: Rate,
}
