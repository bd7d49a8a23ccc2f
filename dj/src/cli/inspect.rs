//! The read commands: `jobs`, `show`, `stats` (delayed_job's `Delayed::Job.find` and
//! `rake jobs:check`), each with `--json`.

use std::process::ExitCode;
use std::time::SystemTime;

use super::args::{JobsArgs, ShowArgs, StatsArgs, TopArgs};
use super::output::{json, rfc3339, table, RowView};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::model::{JobResult, WorkerRow};

pub(super) fn jobs(db: &Db, args: &JobsArgs) -> Result<ExitCode> {
    let mut filter = args.filter.filter();
    filter.limit = Some(args.limit);
    let rows = db.jobs(&filter)?;
    let now = db.now()?;
    let more = match usize::try_from(args.limit) {
        Ok(limit) if rows.len() < limit => None,
        _ => {
            let total = db.count_jobs(&args.filter.filter())?;
            let more = total - rows.len() as i64;
            (more > 0).then(|| format!("... {more} more; use --limit {total} to list them all"))
        }
    };
    if args.json {
        let views: Vec<_> = rows.iter().map(|r| RowView::of(r, now)).collect();
        json(serde_json::json!({ "jobs": views }));
        // stdout stays one JSON object; the note is for the person reading.
        if let Some(more) = more {
            eprintln!("{more}");
        }
        if rows.is_empty() {
            hint_unknown_name(args.filter.name.as_deref());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.state(now).as_str().to_owned(),
                r.name.clone(),
                r.queue.clone().unwrap_or_default(),
                r.priority.to_string(),
                r.attempts.to_string(),
                rfc3339(r.run_at),
                r.locked_by.clone().unwrap_or_default(),
                r.last_error
                    .as_deref()
                    .and_then(|e| e.lines().next())
                    .unwrap_or("")
                    .chars()
                    .take(60)
                    .collect(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATE",
            "NAME",
            "QUEUE",
            "PRI",
            "ATTEMPTS",
            "RUN_AT",
            "LOCKED_BY",
            "LAST_ERROR",
        ],
        &cells,
    );
    if let Some(more) = more {
        println!("{more}");
    }
    if rows.is_empty() {
        hint_unknown_name(args.filter.name.as_deref());
    }
    Ok(ExitCode::SUCCESS)
}

/// After a `--name` filter matched no row, on stderr: if no job linked into this binary has
/// that name, which do (a `#[dj::job]` function is stored as `send_welcome`, not
/// `SendWelcome`), so that a mistyped name does not pass for an empty queue.
pub(super) fn hint_unknown_name(name: Option<&str>) {
    let Some(name) = name else { return };
    let registry = crate::registry::registry();
    if registry.name_of(name).is_some() {
        return;
    }
    let close = registry.close_to(name);
    if close.is_empty() {
        eprintln!(
            "No job named `{name}` is registered in this worker (registered: {})",
            registry.known()
        );
    } else {
        let close: Vec<String> = close.iter().map(|n| format!("`{n}`")).collect();
        eprintln!(
            "No job named `{name}` is registered in this worker; did you mean {}?",
            close.join(" or ")
        );
    }
}

pub(super) fn show(db: &Db, args: &ShowArgs) -> Result<ExitCode> {
    let Some(row) = db.job(args.id)? else {
        return show_result(db, args);
    };
    let now = db.now()?;
    let view = RowView::of(&row, now);
    let attempts = db.job_attempts(args.id)?;
    if args.json {
        let attempts: Vec<_> = attempts.iter().map(attempt_json).collect();
        json(serde_json::json!({ "job": view, "attempts": attempts }));
        return Ok(ExitCode::SUCCESS);
    }
    let value = serde_json::to_value(&view).expect("row serializes");
    for (key, value) in value.as_object().expect("row is an object") {
        let text = match value {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        println!("{key:>12}: {text}");
    }
    print_attempts(&attempts);
    Ok(ExitCode::SUCCESS)
}

/// The attempt history under `show`: one line per failed attempt (number, start, duration,
/// worker), its error's lines indented below.
fn print_attempts(attempts: &[crate::Attempt]) {
    if attempts.is_empty() {
        return;
    }
    println!("{:>12}:", "history");
    for a in attempts {
        println!(
            "{:>14} {}  {:.3}s  on {}",
            format!("#{}", a.attempt),
            rfc3339(a.started_at),
            a.duration().as_secs_f64(),
            a.worker
        );
        for line in a.error.lines() {
            println!("{:>16}{line}", "");
        }
    }
}

/// An attempt in `show --json`.
fn attempt_json(a: &crate::Attempt) -> serde_json::Value {
    serde_json::json!({
        "attempt": a.attempt,
        "worker": a.worker,
        "started_at": rfc3339(a.started_at),
        "finished_at": rfc3339(a.finished_at),
        "duration_secs": a.duration().as_secs_f64(),
        "error": a.error,
    })
}

/// `show` of a job whose row is gone: its stored result (`dj_results`) and its failed
/// attempts, if it has either. (`gone`: no result, but failed attempts: it succeeded without
/// recording a result, or it was deleted.)
fn show_result(db: &Db, args: &ShowArgs) -> Result<ExitCode> {
    let attempts = db.job_attempts(args.id)?;
    let (state, detail) = match db.job_result(args.id)? {
        JobResult::Succeeded(value) => ("succeeded", ("result", value)),
        JobResult::Failed { error } => ("failed", ("error", serde_json::Value::String(error))),
        JobResult::Gone if !attempts.is_empty() => ("gone", ("result", serde_json::Value::Null)),
        _ => return Err(Error::NotFound(args.id)),
    };
    if args.json {
        let (key, value) = detail;
        let attempts: Vec<_> = attempts.iter().map(attempt_json).collect();
        json(serde_json::json!({
            "job": null,
            "finished": { "id": args.id, "state": state, key: value },
            "attempts": attempts,
        }));
    } else {
        println!("{:>12}: {}", "id", args.id);
        println!(
            "{:>12}: {state} (its row is gone; this is its stored outcome)",
            "finished"
        );
        let (key, value) = detail;
        let text = match value {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        println!("{key:>12}: {text}");
        print_attempts(&attempts);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn stats(db: &Db, args: &StatsArgs) -> Result<ExitCode> {
    if args.json {
        let stats = db.stats()?;
        let workers = db.workers()?;
        let paused = db.paused_queues()?;
        let now = db.now()?;
        let workers: Vec<_> = workers.iter().map(|w| WorkerView::of(w, now)).collect();
        json(serde_json::json!({ "queues": stats, "workers": workers, "paused": paused }));
        return Ok(ExitCode::SUCCESS);
    }
    overview(db)?;
    Ok(ExitCode::SUCCESS)
}

/// The running jobs that report progress, for `top`: the first [`TOP_RUNNING`] by id.
fn running_progress(db: &Db) -> Result<()> {
    let running = db.jobs(&crate::JobFilter {
        state: Some(crate::JobState::Running),
        limit: Some(TOP_RUNNING),
        ..crate::JobFilter::default()
    })?;
    let ids: Vec<i64> = running.iter().map(|r| r.id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let progress: std::collections::HashMap<i64, crate::Progress> =
        db.jobs_progress(&ids)?.into_iter().collect();
    let rows: Vec<Vec<String>> = (running.iter())
        .filter_map(|r| {
            let p = progress.get(&r.id)?;
            Some(vec![
                r.id.to_string(),
                r.name.clone(),
                r.queue.clone().unwrap_or_default(),
                r.locked_by.clone().unwrap_or_default(),
                format!("{:.0}%", (p.fraction * 100.0).floor()),
                p.message.clone(),
            ])
        })
        .collect();
    if !rows.is_empty() {
        println!();
        table(
            &["ID", "NAME", "QUEUE", "WORKER", "PROGRESS", "MESSAGE"],
            &rows,
        );
    }
    Ok(())
}

/// How many running jobs `top` looks at for progress.
const TOP_RUNNING: i64 = 50;

/// `top`: the overview of `stats` with throughput, redrawn every `--interval` until TERM/INT
/// (or printed once with `--once`).
pub(super) fn top(db: &Db, args: &TopArgs) -> Result<ExitCode> {
    use std::io::{IsTerminal as _, Write as _};
    crate::worker::signals::install_counter();
    let terminal = std::io::stdout().is_terminal();
    loop {
        if terminal {
            print!("\x1b[2J\x1b[H"); // clear the screen, cursor home
        }
        let now = db.now()?;
        println!(
            "dj top  {}  {}  (every {}; Ctrl-C quits)\n",
            db.url(),
            rfc3339(now),
            humantime::format_duration(args.interval)
        );
        overview(db)?;
        let minutes = db.throughput(60)?;
        println!();
        for (label, m) in [("last minute", 1), ("last 5 minutes", 5), ("last hour", 60)] {
            let (ok, failed) = crate::model::throughput_within(&minutes, now, m);
            println!("THROUGHPUT {label:>15}: {ok} succeeded, {failed} failed attempts");
        }
        running_progress(db)?;
        let _ = std::io::stdout().flush();
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        let deadline = std::time::Instant::now() + args.interval;
        while std::time::Instant::now() < deadline {
            if crate::worker::signals::received() > 0 {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// The queues table, paused queues and workers, as `stats` prints them.
fn overview(db: &Db) -> Result<()> {
    let stats = db.stats()?;
    let workers = db.workers()?;
    let paused = db.paused_queues()?;
    let now = db.now()?;
    let cells: Vec<Vec<String>> = stats
        .iter()
        .map(|s| {
            vec![
                match &s.queue {
                    Some(q) if paused.contains(q) => format!("{q} (paused)"),
                    Some(q) => q.clone(),
                    None => "(none)".to_owned(),
                },
                s.ready.to_string(),
                s.scheduled.to_string(),
                s.running.to_string(),
                s.failed.to_string(),
                s.oldest_ready_age
                    .map(|a| format!("{a:.1}s"))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "QUEUE",
            "READY",
            "SCHEDULED",
            "RUNNING",
            "FAILED",
            "OLDEST_READY",
        ],
        &cells,
    );
    if !paused.is_empty() {
        println!("Paused queues: {}", paused.join(", "));
    }
    println!();
    workers_table(&workers, now);
    Ok(())
}

/// The registered workers, as `stats` and `status` print them.
pub(super) fn workers_table(workers: &[WorkerRow], now: SystemTime) {
    if workers.is_empty() {
        println!("No workers registered.");
        return;
    }
    let cells: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            let view = WorkerView::of(w, now);
            vec![
                w.name.clone(),
                w.queues.clone().unwrap_or_else(|| "(all)".to_owned()),
                w.running.to_string(),
                format!("{:.1}s ago", view.heartbeat_age),
            ]
        })
        .collect();
    table(&["WORKER", "QUEUES", "RUNNING", "LAST_HEARTBEAT"], &cells);
}

/// A worker as `--json` prints it: its registration, times in RFC 3339, and its heartbeat's
/// age by the database's clock.
#[derive(serde::Serialize)]
pub(super) struct WorkerView<'a> {
    name: &'a str,
    host: &'a str,
    pid: i32,
    queues: Option<&'a str>,
    version: &'a str,
    started_at: String,
    heartbeat_at: String,
    running: i32,
    /// Seconds since its last heartbeat, to the millisecond.
    heartbeat_age: f64,
}

impl<'a> WorkerView<'a> {
    pub(super) fn of(worker: &'a WorkerRow, now: SystemTime) -> Self {
        // In milliseconds' precision: 1.659, not 1.6590639999999999.
        let heartbeat_age = now
            .duration_since(worker.heartbeat_at)
            .map_or(0.0, |d| d.as_millis() as f64 / 1000.0);
        WorkerView {
            name: &worker.name,
            host: &worker.host,
            pid: worker.pid,
            queues: worker.queues.as_deref(),
            version: &worker.version,
            started_at: rfc3339(worker.started_at),
            heartbeat_at: rfc3339(worker.heartbeat_at),
            running: worker.running,
            heartbeat_age,
        }
    }
}
