//! Recurring jobs (always built, no feature gates them): schedules stored in `dj_cron`, each
//! fire time enqueued exactly once across every worker on every host.
//!
//! A schedule comes from code (`#[job(cron = "0 */5 * * * *")]` on a job built with
//! `Default`, registered by every worker at start) or is added at run time with its own
//! arguments ([`Schedule`], [`crate::Db::add_schedule`]). Every worker looks once a second for
//! schedules whose `next_fire_at` has come; to fire one it moves `next_fire_at` on with a
//! compare-and-set (`... WHERE name = $1 AND next_fire_at = <the value it read>`) and inserts
//! the job in the same transaction. Two workers cannot both win one fire time, and a worker
//! that dies before its commit has done neither, so a tick is neither doubled nor lost.
//!
//! Times are evaluated as wall-clock times in the schedule's zone and only then turned into
//! instants: a time that does not exist that day (the hour clocks skip in spring) does not
//! fire, and one that happens twice (the hour repeated in autumn) fires once, at its first
//! occurrence.
//!
//! Fire times up to [`GRACE`] old are each enqueued (a worker restarting, a busy tick); older
//! ones are a missed window (every worker was down): [`Missed::Once`] (the default) enqueues
//! one job for the whole window, [`Missed::Skip`] none.

use std::str::FromStr as _;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, LocalResult, TimeZone as _, Timelike as _, Utc};
use chrono_tz::Tz;

use crate::__private::CronRegistration;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::model::{Missed, ScheduleRow};
use crate::model::{NewJob, RowOptions, RunAt, ScheduleDef};
use crate::registry::{load_handler, registry};
use crate::row::row_of;

/// Fire times older than this (by the database's clock) when a worker finds them are a
/// missed window, not a late tick.
pub const GRACE: Duration = Duration::from_secs(60);

/// A recurring job: a name, a cron expression in a time zone, and the job to enqueue at each
/// fire time. Add it with [`crate::Db::add_schedule`]; every worker then fires it.
///
/// The expression has five fields (minute hour day-of-month month day-of-week) or six with
/// seconds first (`"0 */5 * * * *"`: every five minutes, at second 0); `L`, `W` and `#` as
/// croner reads them.
///
/// ```
/// # use dj::{Job, Perform};
/// # use serde::{Deserialize, Serialize};
/// #[derive(Job, Serialize, Deserialize)]
/// struct Report { kind: String }
/// # impl Perform for Report {
/// #     type Error = std::io::Error;
/// #     fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> { Ok(()) }
/// # }
/// # fn main() -> Result<(), dj::Error> {
/// # let dir = std::env::temp_dir().join(format!("dj-doc-schedule-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display()))?;
/// # db.migrate()?;
/// let nightly = dj::Schedule::new("nightly-report", "0 30 2 * * *", &Report { kind: "daily".into() })?
///     .time_zone("Europe/Paris")?
///     .missed(dj::Missed::Skip);
/// db.add_schedule(&nightly)?;
/// assert_eq!(db.schedules()?[0].name, "nightly-report");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Schedule {
    pub(crate) def: ScheduleDef,
    plan: Plan,
}

impl Schedule {
    /// A schedule named `name` (unique in the database) that enqueues `job` at every fire
    /// time of `expression`, in UTC. Fails on an expression croner cannot read, or a job that
    /// cannot be serialized.
    pub fn new<J: Job>(name: impl Into<String>, expression: &str, job: &J) -> Result<Schedule> {
        let name = name.into();
        let plan = Plan::new(&name, expression, "UTC")?;
        let row = row_of(job, RowOptions::default())?;
        Ok(Schedule {
            def: ScheduleDef {
                name,
                expression: expression.to_owned(),
                tz: "UTC".to_owned(),
                missed: Missed::Once,
                job_name: row.name,
                handler: row.handler,
                queue: row.queue,
                priority: row.priority,
                from_code: false,
            },
            plan,
        })
    }

    /// The IANA time zone the expression is read in (`"Europe/Paris"`; default UTC).
    pub fn time_zone(mut self, tz: &str) -> Result<Schedule> {
        self.plan = Plan::new(&self.def.name, &self.def.expression, tz)?;
        self.def.tz = tz.to_owned();
        Ok(self)
    }

    /// What to do about a window of fire times missed while no worker ran.
    pub fn missed(mut self, missed: Missed) -> Schedule {
        self.def.missed = missed;
        self
    }

    /// The queue of the jobs it enqueues (default: the job type's).
    pub fn queue(mut self, queue: impl Into<String>) -> Schedule {
        self.def.queue = Some(queue.into());
        self
    }

    /// The priority of the jobs it enqueues (default: the job type's).
    pub fn priority(mut self, priority: i32) -> Schedule {
        self.def.priority = priority;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The first fire time strictly after `after`, if the expression has one.
    pub fn next_fire_after(&self, after: SystemTime) -> Option<SystemTime> {
        self.plan.next_after(after)
    }

    /// The schedule of a `#[job(cron = ..)]` type.
    pub(crate) fn from_registration(r: &CronRegistration) -> Result<Schedule> {
        let plan = Plan::new(r.name, r.expression, r.tz)?;
        let row = (r.row)()?;
        Ok(Schedule {
            def: ScheduleDef {
                name: r.name.to_owned(),
                expression: r.expression.to_owned(),
                tz: r.tz.to_owned(),
                missed: if r.skip_missed {
                    Missed::Skip
                } else {
                    Missed::Once
                },
                job_name: row.name,
                handler: row.handler,
                queue: row.queue,
                priority: row.priority,
                from_code: true,
            },
            plan,
        })
    }
}

impl ScheduleRow {
    pub(crate) fn plan(&self) -> Result<Plan> {
        Plan::new(&self.name, &self.expression, &self.tz)
    }
}

/// An expression and a zone, parsed: what computes fire times.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    cron: croner::Cron,
    tz: Tz,
}

/// Candidate wall-clock times tried at most while looking for the next real one (a whole
/// skipped or repeated hour of an every-second schedule is 3,600).
const MOST_CANDIDATES: usize = 100_000;

impl Plan {
    pub(crate) fn new(name: &str, expression: &str, tz: &str) -> Result<Plan> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expression)
            .map_err(|e| Error::InvalidSchedule {
                name: name.to_owned(),
                problem: format!(
                    "`{expression}` is not a cron expression ({e}); write five fields \
                     (minute hour day-of-month month day-of-week, e.g. \"30 2 * * *\") or six \
                     with seconds first (e.g. \"0 */5 * * * *\")"
                ),
            })?;
        let tz = Tz::from_str(tz).map_err(|_| Error::InvalidSchedule {
            name: name.to_owned(),
            problem: format!(
                "`{tz}` is not an IANA time zone; write e.g. \"UTC\", \"Europe/Paris\" or \
                 \"America/New_York\""
            ),
        })?;
        Ok(Plan { cron, tz })
    }

    /// The first fire time strictly after `after`. Candidates are wall-clock times (carried
    /// as if UTC, so that the cron crate steps them without any zone), each turned into an
    /// instant in the schedule's zone: none (skipped by a clock change) is passed over; two
    /// (a repeated hour) fire at the first only.
    pub(crate) fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        let after: DateTime<Utc> = after.into();
        // Fire times are whole seconds: step from the second `after` falls in.
        let local = after.with_timezone(&self.tz).naive_local();
        let mut cursor = Utc.from_utc_datetime(&local.with_nanosecond(0).unwrap_or(local));
        for _ in 0..MOST_CANDIDATES {
            let candidate = self.cron.find_next_occurrence(&cursor, false).ok()?;
            cursor = candidate;
            let instant = match self.tz.from_local_datetime(&candidate.naive_utc()) {
                LocalResult::None => continue,
                LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => at.with_timezone(&Utc),
            };
            if instant > after {
                return Some(instant.into());
            }
        }
        None
    }
}

impl Db {
    /// Adds a recurring job (or updates the one of that name): from now on, every worker of
    /// this database enqueues its job once per fire time. Its first fire time is the next one
    /// after the database's clock; an update keeps the schedule's place unless the
    /// expression or time zone changed.
    pub fn add_schedule(&self, schedule: &Schedule) -> Result<()> {
        let next = schedule.next_fire_after(self.now()?);
        self.store().cron_upsert(&schedule.def, next)
    }
}

/// Adds (or updates) the `#[job(cron = ..)]` schedules of this binary: what every worker
/// does at start.
pub(crate) fn register_from_code(db: &Db) -> Result<()> {
    for registration in inventory::iter::<CronRegistration> {
        db.add_schedule(&Schedule::from_registration(registration)?)?;
    }
    Ok(())
}

/// One look for due schedules, firing each that has come: what a worker does every second.
/// Returns the fire times it enqueued, by schedule. A schedule whose job this binary does not
/// know is left to a worker that does; one that cannot be read (a row edited by hand) is
/// passed to `unreadable` and skipped, so that it cannot hold up the others.
pub(crate) fn tick(
    db: &Db,
    mut unreadable: impl FnMut(&ScheduleRow, Error),
) -> Result<Vec<(String, Vec<SystemTime>)>> {
    let store = db.store();
    let (now, rows) = store.cron_due()?;
    let mut fired = Vec::new();
    for row in rows {
        let (Some(expected), Some(name)) = (row.next_fire_at, registry().name_of(&row.job_name))
        else {
            continue;
        };
        let plan = match row.plan() {
            Ok(plan) => plan,
            Err(e) => {
                unreadable(&row, e);
                continue;
            }
        };
        let firing = due(&plan, expected, now, row.missed);
        let jobs = rows_of(&row, name, &firing.fires)?;
        let last = firing.fires.last().copied();
        let fire = crate::store::CronFire {
            name: &row.name,
            expected,
            next: firing.next,
            last,
            jobs: &jobs,
        };
        if store.cron_fire(&fire)? {
            fired.push((row.name, firing.fires));
        }
    }
    Ok(fired)
}

/// What one schedule does on a tick: the fire times to enqueue (in order), the last of them,
/// and the next fire time after `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Firing {
    pub(crate) fires: Vec<SystemTime>,
    pub(crate) next: Option<SystemTime>,
}

/// The fire times due at `now` for a schedule whose next fire time was `next` (≤ `now`).
pub(crate) fn due(plan: &Plan, next: SystemTime, now: SystemTime, missed: Missed) -> Firing {
    let window_start = now.checked_sub(GRACE).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut fires = Vec::new();
    let mut at = Some(next);
    if next <= window_start {
        if missed == Missed::Once {
            fires.push(next);
        }
        at = plan.next_after(window_start);
    }
    while let Some(fire) = at.filter(|&fire| fire <= now) {
        fires.push(fire);
        at = plan.next_after(fire);
    }
    Firing {
        fires,
        next: at.or_else(|| plan.next_after(now)),
    }
}

/// The rows a firing inserts: the schedule's job, due at each fire time, made as `enqueue`
/// makes rows (its type's `max_run_time`, unique and concurrency keys) with the schedule's
/// queue and priority. A stored handler this binary cannot load is inserted as it is, so
/// that the job fails on its row with the load error, where `worker show` finds it.
pub(crate) fn rows_of(
    schedule: &ScheduleRow,
    name: &'static str,
    fires: &[SystemTime],
) -> Result<Vec<NewJob>> {
    let loaded = load_handler(&schedule.handler).ok();
    fires
        .iter()
        .map(|&fire| {
            let options = RowOptions {
                queue: schedule.queue.clone(),
                priority: Some(schedule.priority),
                run_at: RunAt::At(fire),
                ..RowOptions::default()
            };
            match &loaded {
                Some(job) => job.row(options),
                None => Ok(NewJob::stored(name, schedule.handler.clone(), options)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
            .into()
    }

    fn shown(t: SystemTime) -> String {
        DateTime::<Utc>::from(t).to_rfc3339()
    }

    fn next(expression: &str, tz: &str, after: &str) -> String {
        shown(
            Plan::new("t", expression, tz)
                .unwrap()
                .next_after(at(after))
                .unwrap(),
        )
    }

    #[test]
    fn a_time_skipped_by_the_spring_change_does_not_fire_that_day() {
        // Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        assert_eq!(
            next("0 30 2 * * *", "Europe/Paris", "2026-03-27T12:00:00Z"),
            "2026-03-28T01:30:00+00:00" // 02:30 CET
        );
        assert_eq!(
            next("0 30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z"),
            "2026-03-30T00:30:00+00:00" // 02:30 CEST, the next day that has one
        );
        // Times around the gap still fire.
        assert_eq!(
            next("0 30 3 * * *", "Europe/Paris", "2026-03-28T12:00:00Z"),
            "2026-03-29T01:30:00+00:00"
        );
    }

    #[test]
    fn a_time_repeated_by_the_autumn_change_fires_once() {
        // Paris, 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
        let plan = Plan::new("t", "0 30 2 * * *", "Europe/Paris").unwrap();
        let first = plan.next_after(at("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(shown(first), "2026-10-25T00:30:00+00:00"); // 02:30 CEST
        let then = plan.next_after(first).unwrap();
        assert_eq!(shown(then), "2026-10-26T01:30:00+00:00"); // not 02:30 CET the same day
                                                              // Every minute through the repeated hour: each wall-clock minute once.
        let plan = Plan::new("t", "*/20 * * * *", "Europe/Paris").unwrap();
        let mut t = at("2026-10-24T23:50:00Z");
        let mut fires = Vec::new();
        for _ in 0..8 {
            t = plan.next_after(t).unwrap();
            fires.push(shown(t));
        }
        assert_eq!(
            fires,
            [
                "2026-10-25T00:00:00+00:00", // 02:00 CEST
                "2026-10-25T00:20:00+00:00",
                "2026-10-25T00:40:00+00:00",
                "2026-10-25T02:00:00+00:00", // 03:00 CET: 02:00-02:40 CET were skipped
                "2026-10-25T02:20:00+00:00",
                "2026-10-25T02:40:00+00:00",
                "2026-10-25T03:00:00+00:00",
                "2026-10-25T03:20:00+00:00",
            ]
        );
    }

    #[test]
    fn five_and_six_fields_and_bad_input() {
        assert_eq!(
            next("*/5 * * * *", "UTC", "2026-01-01T00:00:01Z"),
            "2026-01-01T00:05:00+00:00"
        );
        assert_eq!(
            next("*/10 * * * * *", "UTC", "2026-01-01T00:00:01Z"),
            "2026-01-01T00:00:10+00:00"
        );
        // From within a second: the next whole one.
        assert_eq!(
            next("* * * * * *", "UTC", "2026-01-01T00:00:01.920Z"),
            "2026-01-01T00:00:02+00:00"
        );
        let bad = Plan::new("t", "every day", "UTC").unwrap_err().to_string();
        assert!(bad.contains("not a cron expression"), "{bad}");
        let bad = Plan::new("t", "* * * * *", "Paris")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("Europe/Paris"), "{bad}");
    }

    #[test]
    fn late_ticks_each_fire_and_a_missed_window_fires_once_or_not() {
        let plan = Plan::new("t", "* * * * * *", "UTC").unwrap();
        let now = at("2026-01-01T12:00:00Z");
        // Three seconds late: three jobs.
        let f = due(&plan, at("2026-01-01T11:59:58Z"), now, Missed::Once);
        assert_eq!(f.fires.len(), 3);
        assert_eq!(f.next, Some(at("2026-01-01T12:00:01Z")));
        // An hour down: one job for the window, then the minute on time.
        let f = due(&plan, at("2026-01-01T11:00:00Z"), now, Missed::Once);
        assert_eq!(f.fires.len(), 1 + 60);
        assert_eq!(f.fires[0], at("2026-01-01T11:00:00Z"));
        let f = due(&plan, at("2026-01-01T11:00:00Z"), now, Missed::Skip);
        assert_eq!(f.fires.len(), 60);
        assert_eq!(f.fires[0], at("2026-01-01T11:59:01Z"));
        // An hourly schedule down for a day, skip: nothing at all.
        let hourly = Plan::new("t", "0 0 * * * *", "UTC").unwrap();
        let f = due(
            &hourly,
            at("2025-12-31T12:00:00Z"),
            at("2026-01-01T11:30:00Z"),
            Missed::Skip,
        );
        assert!(f.fires.is_empty());
        assert_eq!(f.next, Some(at("2026-01-01T12:00:00Z")));
    }
}
