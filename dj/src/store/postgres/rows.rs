//! Rows into dj's types, and a filtered statement's values into parameters.

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use crate::model::{JobRow, Missed, QueueStats, ScheduleRow, WorkerRow};
use crate::store::filter;

/// A job, from [`super::sql::COLUMNS`] or a claim's `RETURNING` (the same order).
pub(crate) fn job_row(row: &Row) -> JobRow {
    JobRow {
        id: row.get(0),
        priority: row.get(1),
        attempts: row.get(2),
        handler: row.get(3),
        last_error: row.get(4),
        run_at: row.get(5),
        locked_at: row.get(6),
        failed_at: row.get(7),
        locked_by: row.get(8),
        queue: row.get(9),
        created_at: row.get(10),
        updated_at: row.get(11),
        name: row.get(12),
        max_run_time: row.get(13),
        started_at: row.get(14),
        crashes: row.get(15),
        snoozes: row.get(16),
        unique_key: row.get(17),
        concurrency_key: row.get(18),
    }
}

/// A stored schedule, from `cron_columns!`.
pub(crate) fn schedule_row(row: &Row) -> ScheduleRow {
    ScheduleRow {
        name: row.get(0),
        expression: row.get(1),
        tz: row.get(2),
        missed: Missed::parse(row.get(3)),
        job_name: row.get(4),
        handler: row.get(5),
        queue: row.get(6),
        priority: row.get(7),
        from_code: row.get(8),
        last_fire_at: row.get(9),
        next_fire_at: row.get(10),
    }
}

/// A registered worker, from [`super::sql::WORKER_LIST`].
pub(crate) fn worker_row(r: &Row) -> WorkerRow {
    WorkerRow {
        name: r.get(0),
        host: r.get(1),
        pid: r.get(2),
        queues: r.get(3),
        version: r.get(4),
        started_at: r.get(5),
        heartbeat_at: r.get(6),
        running: r.get(7),
    }
}

/// One queue's counts, from [`super::sql::JOB_STATS`].
pub(crate) fn queue_stats(r: &Row) -> QueueStats {
    QueueStats {
        queue: r.get(0),
        ready: r.get(1),
        scheduled: r.get(2),
        running: r.get(3),
        failed: r.get(4),
        oldest_ready_age: r.get(5),
    }
}

/// How many rows a `waking!` statement changed.
pub(crate) fn changed(rows: &[Row]) -> u64 {
    rows.first()
        .map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0))
}

/// A filtered statement's parameter types (for a statement sent unnamed).
pub(crate) fn types(statement: &filter::Statement) -> Vec<Type> {
    statement
        .values
        .iter()
        .map(|v| match v {
            filter::Value::Text(_) => Type::TEXT,
            filter::Value::Int(_) => Type::INT8,
        })
        .collect()
}

/// A filtered statement's values, bound as PostgreSQL parameters.
pub(crate) fn params(statement: &filter::Statement) -> Vec<&(dyn ToSql + Sync)> {
    statement
        .values
        .iter()
        .map(|v| match v {
            filter::Value::Text(t) => t as &(dyn ToSql + Sync),
            filter::Value::Int(i) => i as &(dyn ToSql + Sync),
        })
        .collect()
}
