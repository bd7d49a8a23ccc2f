//! Rows as SQLite returns them, mapped to dj's types; times read as unix seconds; the values
//! of a filtered statement and of an id list as SQLite binds them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Row};

use crate::model::{JobId, JobRow, Missed, QueueStats, ScheduleRow, WorkerRow};
use crate::store::filter;

/// SQLite keeps times to the millisecond; `unixepoch(.., 'subsec')` gives them as a float
/// (`…54.123` may read as `…54.12299…`), so round to the millisecond rather than truncate.
pub(super) fn time(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis((secs.max(0.0) * 1000.0).round() as u64)
}

/// A required time column. A value SQLite cannot read as a time (text written by hand, say)
/// reads as the epoch rather than making the row, and every claim that meets it, fail.
fn required_time(row: &Row<'_>, index: usize) -> rusqlite::Result<SystemTime> {
    Ok(row.get::<_, Option<f64>>(index)?.map_or(UNIX_EPOCH, time))
}

/// An optional time column.
fn optional_time(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<SystemTime>> {
    Ok(row.get::<_, Option<f64>>(index)?.map(time))
}

/// A row of `COLUMNS`.
pub(super) fn job_row(row: &Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: row.get(0)?,
        priority: row.get(1)?,
        attempts: row.get(2)?,
        handler: row.get(3)?,
        last_error: row.get(4)?,
        run_at: required_time(row, 5)?,
        locked_at: optional_time(row, 6)?,
        failed_at: optional_time(row, 7)?,
        locked_by: row.get(8)?,
        queue: row.get(9)?,
        created_at: required_time(row, 10)?,
        updated_at: required_time(row, 11)?,
        name: row.get(12)?,
        max_run_time: row.get(13)?,
        started_at: optional_time(row, 14)?,
        crashes: row.get(15)?,
        snoozes: row.get(16)?,
        unique_key: row.get(17)?,
        concurrency_key: row.get(18)?,
    })
}

/// A row of `WORKER_COLUMNS`.
pub(super) fn worker_row(r: &Row<'_>) -> rusqlite::Result<WorkerRow> {
    Ok(WorkerRow {
        name: r.get(0)?,
        host: r.get(1)?,
        pid: r.get(2)?,
        queues: r.get(3)?,
        version: r.get(4)?,
        started_at: required_time(r, 5)?,
        heartbeat_at: required_time(r, 6)?,
        running: r.get(7)?,
    })
}

/// A row of `STATS`.
pub(super) fn queue_stats(r: &Row<'_>) -> rusqlite::Result<QueueStats> {
    Ok(QueueStats {
        queue: r.get(0)?,
        ready: r.get(1)?,
        scheduled: r.get(2)?,
        running: r.get(3)?,
        failed: r.get(4)?,
        oldest_ready_age: r.get(5)?,
    })
}

/// A row of `CRON_COLUMNS`.
pub(super) fn schedule_row(row: &Row<'_>) -> rusqlite::Result<ScheduleRow> {
    Ok(ScheduleRow {
        name: row.get(0)?,
        expression: row.get(1)?,
        tz: row.get(2)?,
        missed: Missed::parse(&row.get::<_, String>(3)?),
        job_name: row.get(4)?,
        handler: row.get(5)?,
        queue: row.get(6)?,
        priority: row.get(7)?,
        from_code: row.get(8)?,
        last_fire_at: optional_time(row, 9)?,
        next_fire_at: optional_time(row, 10)?,
    })
}

/// A throughput row: the minute, succeeded, failed.
pub(super) fn throughput_row(r: &Row<'_>) -> rusqlite::Result<(SystemTime, i64, i64)> {
    Ok((time(r.get::<_, f64>(0)?), r.get(1)?, r.get(2)?))
}

/// Ids as the JSON array the statements read with `json_each`.
pub(super) fn ids_json(ids: &[JobId]) -> String {
    serde_json::to_string(ids).expect("ids serialize")
}

/// A filtered statement's values, bound as SQLite parameters.
pub(super) fn params(statement: &filter::Statement) -> rusqlite::ParamsFromIter<Vec<Value>> {
    params_from_iter(
        statement
            .values
            .iter()
            .map(|v| match v {
                filter::Value::Text(t) => Value::Text(t.clone()),
                filter::Value::Int(i) => Value::Integer(*i),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::time;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_keep_their_milliseconds() {
        // 1764632514.123 is 1764632514.12299990654… as a double.
        let t = time(1_764_632_514.123);
        assert_eq!(t, UNIX_EPOCH + Duration::from_millis(1_764_632_514_123));
        assert_eq!(time(-5.0), UNIX_EPOCH);
    }
}
