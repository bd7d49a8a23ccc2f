//! Recurring jobs as the store keeps them in `dj_cron`.

use std::time::SystemTime;

/// What a schedule does about fire times that passed while no worker ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missed {
    /// Enqueue one job for the whole missed window (its run time: the first fire time missed).
    #[default]
    Once,
    /// Enqueue nothing for it; the next fire time on schedule runs as usual.
    Skip,
}

impl Missed {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Missed::Once => "once",
            Missed::Skip => "skip",
        }
    }
    pub(crate) fn parse(text: &str) -> Missed {
        if text == "skip" {
            Missed::Skip
        } else {
            Missed::Once
        }
    }
}

/// A schedule's definition, as the store writes it (see [`crate::Schedule`]).
#[derive(Debug, Clone)]
pub(crate) struct ScheduleDef {
    pub(crate) name: String,
    pub(crate) expression: String,
    pub(crate) tz: String,
    pub(crate) missed: Missed,
    pub(crate) job_name: &'static str,
    pub(crate) handler: String,
    pub(crate) queue: Option<String>,
    pub(crate) priority: i32,
    pub(crate) from_code: bool,
}

/// A stored schedule, as `worker cron` lists it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScheduleRow {
    /// The schedule's name (a `#[job(cron)]` type's: its job name).
    pub name: String,
    /// The cron expression.
    pub expression: String,
    /// The IANA time zone it is read in.
    pub tz: String,
    /// What a missed window does.
    pub missed: Missed,
    /// The job it enqueues.
    pub job_name: String,
    /// The job's handler (its stored payload).
    pub handler: String,
    /// The queue of its jobs.
    pub queue: Option<String>,
    /// The priority of its jobs.
    pub priority: i32,
    /// Declared in code (`#[job(cron = ..)]`), registered by every worker at start.
    pub from_code: bool,
    /// The fire time of the last job it enqueued.
    pub last_fire_at: Option<SystemTime>,
    /// When it fires next (none: the expression has no later time).
    pub next_fire_at: Option<SystemTime>,
}
