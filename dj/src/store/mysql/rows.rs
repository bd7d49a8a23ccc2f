//! Rows as MySQL returns them, mapped to dj's types; times read as unix seconds; id lists and
//! a filtered statement's values as MySQL takes them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mysql::prelude::FromValue;
use mysql::{Row, Value};

use crate::model::{JobId, JobRow, Missed, QueueStats, ScheduleRow, WorkerRow};
use crate::store::filter;

/// MySQL keeps times to the microsecond; read as a double, round rather than truncate.
pub(super) fn time(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros((secs.max(0.0) * 1e6).round() as u64)
}

/// Column `i` of `row`, converted.
pub(super) fn col<T: FromValue>(row: &Row, i: usize) -> mysql::Result<T> {
    match row.get_opt::<T, usize>(i) {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(mysql::Error::FromValueError(e.0)),
        None => Err(mysql::Error::FromRowError(row.clone())),
    }
}

fn required_time(row: &Row, i: usize) -> mysql::Result<SystemTime> {
    Ok(col::<Option<f64>>(row, i)?.map_or(UNIX_EPOCH, time))
}

pub(super) fn optional_time(row: &Row, i: usize) -> mysql::Result<Option<SystemTime>> {
    Ok(col::<Option<f64>>(row, i)?.map(time))
}

/// A row of `COLUMNS`.
pub(super) fn job_row(row: Row) -> mysql::Result<JobRow> {
    Ok(JobRow {
        id: col(&row, 0)?,
        priority: col(&row, 1)?,
        attempts: col(&row, 2)?,
        handler: col(&row, 3)?,
        last_error: col(&row, 4)?,
        run_at: required_time(&row, 5)?,
        locked_at: optional_time(&row, 6)?,
        failed_at: optional_time(&row, 7)?,
        locked_by: col(&row, 8)?,
        queue: col(&row, 9)?,
        created_at: required_time(&row, 10)?,
        updated_at: required_time(&row, 11)?,
        name: col(&row, 12)?,
        max_run_time: col(&row, 13)?,
        started_at: optional_time(&row, 14)?,
        crashes: col(&row, 15)?,
        snoozes: col(&row, 16)?,
        unique_key: col(&row, 17)?,
        concurrency_key: col(&row, 18)?,
    })
}

/// A row of `WORKER_COLUMNS`.
pub(super) fn worker_row(r: Row) -> mysql::Result<WorkerRow> {
    Ok(WorkerRow {
        name: col(&r, 0)?,
        host: col(&r, 1)?,
        pid: col(&r, 2)?,
        queues: col(&r, 3)?,
        version: col(&r, 4)?,
        started_at: required_time(&r, 5)?,
        heartbeat_at: required_time(&r, 6)?,
        running: col(&r, 7)?,
    })
}

/// A row of `STATS`.
pub(super) fn queue_stats(r: Row) -> mysql::Result<QueueStats> {
    Ok(QueueStats {
        queue: col(&r, 0)?,
        ready: col(&r, 1)?,
        scheduled: col(&r, 2)?,
        running: col(&r, 3)?,
        failed: col(&r, 4)?,
        oldest_ready_age: col(&r, 5)?,
    })
}

/// A row of `CRON_COLUMNS`.
pub(super) fn schedule_row(row: Row) -> mysql::Result<ScheduleRow> {
    Ok(ScheduleRow {
        name: col(&row, 0)?,
        expression: col(&row, 1)?,
        tz: col(&row, 2)?,
        missed: Missed::parse(&col::<String>(&row, 3)?),
        job_name: col(&row, 4)?,
        handler: col(&row, 5)?,
        queue: col(&row, 6)?,
        priority: col(&row, 7)?,
        from_code: col(&row, 8)?,
        last_fire_at: optional_time(&row, 9)?,
        next_fire_at: optional_time(&row, 10)?,
    })
}

/// A throughput row: the minute, succeeded, failed.
pub(super) fn throughput_row(r: Row) -> mysql::Result<(SystemTime, i64, i64)> {
    Ok((time(col(&r, 0)?), col(&r, 1)?, col(&r, 2)?))
}

/// Ids as the text of an `IN (...)` list: integers only, so nothing a user wrote reaches the
/// SQL text. Never empty (`NULL` matches no row).
pub(super) fn id_list(ids: &[JobId]) -> String {
    if ids.is_empty() {
        return "NULL".to_owned();
    }
    let mut out = String::with_capacity(ids.len() * 8);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&id.to_string());
    }
    out
}

/// A filtered statement's values, bound positionally.
pub(super) fn params(statement: &filter::Statement) -> Vec<Value> {
    (statement.values.iter())
        .map(|v| match v {
            filter::Value::Text(t) => Value::from(t.as_str()),
            filter::Value::Int(i) => Value::Int(*i),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{id_list, time};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_keep_their_microseconds() {
        let t = time(1_764_632_514.123_456);
        assert_eq!(t, UNIX_EPOCH + Duration::from_micros(1_764_632_514_123_456));
    }

    #[test]
    fn id_lists_are_integers_and_never_empty() {
        assert_eq!(id_list(&[3, 1, 2]), "3,1,2");
        assert_eq!(id_list(&[]), "NULL");
    }
}
