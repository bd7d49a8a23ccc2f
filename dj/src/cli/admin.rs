//! The write commands: `retry`, `delete`, `clear` (delayed_job's `rake jobs:clear`) and
//! `unlock`, `cancel`, `limit`. Bulk ones print the count and ask first (`--yes` off a terminal).

use std::process::ExitCode;

use super::args::{
    CancelArgs, ClearArgs, CronArgs, DeleteArgs, Limit, LimitArgs, PruneArgs, QueueArgs, RateArg,
    RateArgs, RetryArgs, UnlockArgs,
};
use super::confirm;
use super::inspect::hint_unknown_name;
use super::output::json;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::model::{Cancel, JobFilter, JobState, RateScope};
use crate::worker::Liveness;

fn done(verb: &str, count: u64, as_json: bool) -> ExitCode {
    if as_json {
        json(serde_json::json!({ verb: count }));
    } else {
        println!("{verb} {count} job(s)");
    }
    ExitCode::SUCCESS
}

pub(super) fn retry(db: &Db, args: &RetryArgs) -> Result<ExitCode> {
    let filter = match args.id {
        Some(id) => {
            let row = db.job(id)?.ok_or(Error::NotFound(id))?;
            if let Some(worker) = row.locked_by {
                return Err(Error::Invalid(format!(
                    "job {id} is running (locked by {worker}); retry it once it has finished or failed, or `unlock` it if its worker is gone"
                )));
            }
            JobFilter {
                id: Some(id),
                ..JobFilter::default()
            }
        }
        None => {
            let filter = JobFilter {
                state: Some(JobState::Failed),
                queue: args.queue.clone(),
                name: args.name.clone(),
                ..JobFilter::default()
            };
            let count = db.count_jobs(&filter)?;
            if count == 0 {
                hint_unknown_name(args.name.as_deref());
            }
            if !confirm("Retry", count, args.yes)? {
                return Ok(ExitCode::FAILURE);
            }
            filter
        }
    };
    Ok(done("retried", db.retry_jobs(&filter)?, args.json))
}

pub(super) fn delete(db: &Db, args: &DeleteArgs) -> Result<ExitCode> {
    let filter = match args.id {
        Some(id) => {
            db.job(id)?.ok_or(Error::NotFound(id))?;
            JobFilter {
                id: Some(id),
                ..JobFilter::default()
            }
        }
        None => {
            let filter = args.filter.filter();
            if filter == JobFilter::default() {
                return Err(Error::Invalid(
                    "`delete` needs an id or a filter (--state, --queue, --name); to delete everything use `clear`".to_owned(),
                ));
            }
            let count = db.count_jobs(&filter)?;
            if count == 0 {
                hint_unknown_name(args.filter.name.as_deref());
            }
            if !confirm("Delete", count, args.yes)? {
                return Ok(ExitCode::FAILURE);
            }
            filter
        }
    };
    Ok(done("deleted", db.delete_jobs(&filter)?, args.json))
}

pub(super) fn clear(db: &Db, args: &ClearArgs) -> Result<ExitCode> {
    let filter = JobFilter {
        queue: args.queue.clone(),
        ..JobFilter::default()
    };
    if !confirm("Delete", db.count_jobs(&filter)?, args.yes)? {
        return Ok(ExitCode::FAILURE);
    }
    Ok(done("deleted", db.delete_jobs(&filter)?, args.json))
}

pub(super) fn pause(db: &Db, args: &QueueArgs, paused: bool) -> Result<ExitCode> {
    let changed = if paused {
        db.pause_queue(&args.queue)?
    } else {
        db.resume_queue(&args.queue)?
    };
    let state = if paused { "paused" } else { "resumed" };
    if changed {
        println!("Queue {} {state}", args.queue);
    } else {
        println!(
            "Queue {} was already {}",
            args.queue,
            if paused { "paused" } else { "running" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn cancel(db: &Db, args: &CancelArgs) -> Result<ExitCode> {
    let outcome = db.cancel(args.id)?;
    if args.json {
        json(serde_json::json!({ "id": args.id, "cancel": outcome }));
    } else {
        match outcome {
            Cancel::Dequeued => println!(
                "Cancelled job {}: it was waiting, and is now failed as \"cancelled\" (`retry {}` undoes it)",
                args.id, args.id
            ),
            Cancel::Requested => println!(
                "Asked the worker running job {} to stop it; it fails as \"cancelled\" within a second",
                args.id
            ),
            Cancel::NotFound => println!("No job {} is waiting or running", args.id),
        }
    }
    Ok(if outcome == Cancel::NotFound {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) fn limit(db: &Db, args: &LimitArgs) -> Result<ExitCode> {
    let Some(queue) = &args.queue else {
        let limits = db.queue_limits()?;
        if limits.is_empty() {
            println!("No queue has a limit");
        }
        for (queue, max) in limits {
            println!("{queue}: at most {max} running");
        }
        return Ok(ExitCode::SUCCESS);
    };
    match args.max_running {
        None => match db.queue_limits()?.into_iter().find(|(q, _)| q == queue) {
            Some((_, max)) => println!("{queue}: at most {max} running"),
            None => println!("{queue}: no limit"),
        },
        Some(Limit::Max(n)) => {
            let changed = db.limit_queue(queue, Some(n))?;
            println!(
                "Queue {queue}: at most {n} running at once{}",
                if changed { "" } else { " (unchanged)" }
            );
        }
        Some(Limit::Unlimited) => {
            let changed = db.limit_queue(queue, None)?;
            println!(
                "Queue {queue}: {}",
                if changed {
                    "limit removed"
                } else {
                    "had no limit"
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn rate(db: &Db, args: &RateArgs) -> Result<ExitCode> {
    let scope = match (&args.queue, &args.key) {
        (Some(queue), _) => RateScope::Queue(queue.clone()),
        (None, Some(key)) => RateScope::Key(key.clone()),
        (None, None) => {
            if args.rate.is_some() {
                return Err(Error::Invalid(
                    "say what the rate limits: `rate --queue QUEUE RATE` or `rate --key KEY RATE`"
                        .to_owned(),
                ));
            }
            let limits = db.rate_limits()?;
            if limits.is_empty() {
                println!("No queue or key has a rate limit set at run time");
            }
            for limit in limits {
                println!("{}: at most {} starts", limit.scope, limit.rate);
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let Some(rate) = args.rate.map(|rate| match rate {
        RateArg::Set(rate) => Some(rate),
        RateArg::Unlimited => None,
    }) else {
        match db.rate_limits()?.into_iter().find(|l| l.scope == scope) {
            Some(limit) => println!("{scope}: at most {} starts", limit.rate),
            None => println!("{scope}: no rate limit set at run time"),
        }
        return Ok(ExitCode::SUCCESS);
    };
    let changed = match &scope {
        RateScope::Queue(queue) => db.rate_limit_queue(queue, rate)?,
        RateScope::Key(key) => db.rate_limit_key(key, rate)?,
    };
    let unchanged = if changed { "" } else { " (unchanged)" };
    match rate {
        Some(rate) => println!("{scope}: at most {rate} starts{unchanged}"),
        None if changed => println!("{scope}: rate limit removed"),
        None => println!("{scope}: had no rate limit"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A schedule as `cron --json` prints it.
#[derive(serde::Serialize)]
struct ScheduleView<'a> {
    name: &'a str,
    expression: &'a str,
    tz: &'a str,
    missed: &'static str,
    job: &'a str,
    queue: Option<&'a str>,
    priority: i32,
    from_code: bool,
    last_fire_at: Option<String>,
    next_fire_at: Option<String>,
}

pub(super) fn cron(db: &Db, args: &CronArgs) -> Result<ExitCode> {
    if let Some(name) = &args.remove {
        return Ok(if db.remove_schedule(name)? {
            println!("Removed schedule {name}");
            ExitCode::SUCCESS
        } else {
            eprintln!("No schedule named {name}; `cron` lists them");
            ExitCode::FAILURE
        });
    }
    crate::cron::register_from_code(db)?;
    let schedules = db.schedules()?;
    let time = |t: Option<std::time::SystemTime>| t.map(super::output::rfc3339);
    let views: Vec<ScheduleView<'_>> = schedules
        .iter()
        .map(|s| ScheduleView {
            name: &s.name,
            expression: &s.expression,
            tz: &s.tz,
            missed: s.missed.as_str(),
            job: &s.job_name,
            queue: s.queue.as_deref(),
            priority: s.priority,
            from_code: s.from_code,
            last_fire_at: time(s.last_fire_at),
            next_fire_at: time(s.next_fire_at),
        })
        .collect();
    if args.json {
        json(serde_json::json!({ "schedules": views }));
        return Ok(ExitCode::SUCCESS);
    }
    if views.is_empty() {
        println!("No schedules; add `#[job(cron = \"..\")]` to a job or `db.add_schedule(..)`");
    }
    for v in &views {
        println!(
            "{}  {:?} {}  job {}  missed: {}  last: {}  next: {}",
            v.name,
            v.expression,
            v.tz,
            v.job,
            v.missed,
            v.last_fire_at.as_deref().unwrap_or("never"),
            v.next_fire_at.as_deref().unwrap_or("none")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn prune(db: &Db, args: &PruneArgs) -> Result<ExitCode> {
    let n = db.prune_failed(args.older_than)?;
    println!(
        "Deleted {n} jobs that failed more than {} ago",
        humantime::format_duration(args.older_than)
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn unlock(db: &Db, args: &UnlockArgs) -> Result<ExitCode> {
    if let Some(worker) = &args.worker {
        return Ok(done("unlocked", db.unlock_worker(worker)?, args.json));
    }
    let rows = db.jobs(&JobFilter {
        state: Some(JobState::Running),
        ..JobFilter::default()
    })?;
    // Registrations and heartbeats are all liveness reads (not `Db::workers`' counts).
    let live = Liveness::new(db.now()?, args.heartbeat_timeout, db.store().worker_list()?);
    let mut gone: Vec<String> = rows
        .iter()
        .filter(|row| live.lock_stale(row).is_some())
        .filter_map(|row| row.locked_by.clone())
        .collect();
    gone.sort();
    gone.dedup();
    let mut released = 0;
    for locker in &gone {
        released += db.unlock_worker(locker)?;
    }
    Ok(done("unlocked", released, args.json))
}
