//! The PostgreSQL backend: the deployment target. Claims use `FOR UPDATE SKIP LOCKED` in a
//! CTE (never `IN (...)`), outcomes are written for many jobs per statement, inserts are one
//! statement per batch, and an `AFTER INSERT ... FOR EACH STATEMENT` trigger NOTIFYs idle
//! workers.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use fallible_iterator::FallibleIterator;
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, NoTls, Row, Statement};

use super::pool::{Manage, Pool};
use super::{
    filter, ClaimParams, Fail, JobFilter, JobRow, QueueStats, Retry, Store, WorkerInfo, WorkerRow,
    VERSION,
};
use crate::enqueue::{JobId, NewJob, RunAt};
use crate::error::{Error, Result};
use crate::worker::StopFlag;

/// Migrations, numbered, applied in order by `migrate`.
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_create_delayed_jobs.sql"),
    ),
    (
        2,
        include_str!("../../migrations/postgres/0002_worker_liveness.sql"),
    ),
];

const COLUMNS: &str = "id, priority, attempts, handler, last_error, run_at, locked_at, failed_at, \
                       locked_by, queue, created_at, updated_at, name, max_run_time, started_at, crashes";

const CHANNEL: &str = "delayed_jobs";

/// A connection with its prepared statements, so hot queries are parsed once per connection.
pub(crate) struct PgConn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl PgConn {
    fn statement(
        &mut self,
        sql: &'static str,
        types: &[Type],
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare_typed(sql, types)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
    fn execute(
        &mut self,
        sql: &'static str,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql, types)?;
        self.client.execute(&statement, params)
    }
}

pub(crate) struct Manager {
    config: postgres::Config,
}

impl Manage for Manager {
    type Conn = PgConn;
    fn open(&self) -> Result<PgConn> {
        let client = self.config.connect(NoTls)?;
        Ok(PgConn {
            client,
            statements: HashMap::new(),
        })
    }
    fn healthy(&self, conn: &mut PgConn) -> bool {
        !conn.client.is_closed()
    }
}

pub(crate) struct PgStore {
    pool: Pool<Manager>,
    shown: String,
    listener: Mutex<Option<Client>>,
}

impl PgStore {
    pub(crate) fn open(url: &str) -> Result<PgStore> {
        let config = postgres::Config::from_str(url).map_err(|e| Error::BadUrl {
            url: hide_password(url),
            reason: e.to_string(),
        })?;
        Ok(PgStore {
            pool: Pool::new(Manager { config }, 16),
            shown: hide_password(url),
            listener: Mutex::new(None),
        })
    }

    fn run<T>(&self, f: impl FnOnce(&mut PgConn) -> Result<T, postgres::Error>) -> Result<T> {
        let mut conn = self.pool.get()?;
        f(&mut conn).map_err(|e| self.error(e))
    }

    fn error(&self, e: postgres::Error) -> Error {
        missing_table(e, &self.shown)
    }
}

fn missing_table(e: postgres::Error, database: &str) -> Error {
    match e.code() {
        Some(code) if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN => {
            Error::MissingTable {
                database: database.to_owned(),
            }
        }
        _ => Error::Postgres(e),
    }
}

fn hide_password(url: &str) -> String {
    // postgres://user:secret@host/db -> postgres://user:***@host/db
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

fn job_row(row: &Row) -> JobRow {
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
    }
}

/// Columns of a batch insert, one array per column.
struct InsertArrays<'a> {
    names: Vec<&'a str>,
    handlers: Vec<&'a str>,
    priorities: Vec<i32>,
    queues: Vec<Option<&'a str>>,
    at: Vec<Option<SystemTime>>,
    delays: Vec<f64>,
    max_run_times: Vec<Option<i32>>,
}

impl<'a> InsertArrays<'a> {
    fn of(rows: &'a [NewJob]) -> Self {
        let mut a = InsertArrays {
            names: Vec::with_capacity(rows.len()),
            handlers: Vec::with_capacity(rows.len()),
            priorities: Vec::with_capacity(rows.len()),
            queues: Vec::with_capacity(rows.len()),
            at: Vec::with_capacity(rows.len()),
            delays: Vec::with_capacity(rows.len()),
            max_run_times: Vec::with_capacity(rows.len()),
        };
        for row in rows {
            let (at, delay) = run_at_parts(row.run_at);
            a.names.push(row.name);
            a.handlers.push(&row.handler);
            a.priorities.push(row.priority);
            a.queues.push(row.queue.as_deref());
            a.at.push(at);
            a.delays.push(delay);
            a.max_run_times.push(row.max_run_time);
        }
        a
    }
}

/// An absolute time, or seconds to add to the database's `now()`.
fn run_at_parts(run_at: RunAt) -> (Option<SystemTime>, f64) {
    match run_at {
        RunAt::Now => (None, 0.0),
        RunAt::In(delay) => (None, delay.as_secs_f64()),
        RunAt::At(when) => (Some(when), 0.0),
    }
}

const INSERT_ONE: &str =
    "INSERT INTO delayed_jobs (name, handler, priority, queue, run_at, max_run_time) \
     VALUES ($1, $2, $3, $4, coalesce($5, now() + $6 * interval '1 second'), $7) RETURNING id";
const INSERT_ONE_TYPES: &[Type] = &[
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::FLOAT8,
    Type::INT4,
];

const INSERT_MANY: &str = "INSERT INTO delayed_jobs (name, handler, priority, queue, run_at, max_run_time) \
     SELECT n, h, p, q, coalesce(a, now() + d * interval '1 second'), m \
     FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::timestamptz[], $6::float8[], $7::int4[]) \
          AS t(n, h, p, q, a, d, m) \
     RETURNING id";
const INSERT_MANY_TYPES: &[Type] = &[
    Type::TEXT_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::TIMESTAMPTZ_ARRAY,
    Type::FLOAT8_ARRAY,
    Type::INT4_ARRAY,
];

/// How an insert reaches the server: a pooled connection runs its cached prepared statement;
/// the caller's own client runs it typed (one round trip, nothing left prepared on it).
trait Query {
    fn query(
        &mut self,
        sql: &'static str,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error>;
}

impl Query for PgConn {
    fn query(
        &mut self,
        sql: &'static str,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql, types)?;
        self.client.query(&statement, params)
    }
}

/// The caller's client (a transaction, or a plain connection).
struct Typed<'a, C>(&'a mut C);

impl<C: GenericClient> Query for Typed<'_, C> {
    fn query(
        &mut self,
        sql: &'static str,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let typed: Vec<(&(dyn ToSql + Sync), Type)> =
            params.iter().copied().zip(types.iter().cloned()).collect();
        self.0.query_typed(sql, &typed)
    }
}

/// Inserts rows through any client: a pooled connection or the caller's transaction. One
/// statement, one round trip.
pub(crate) fn insert_jobs(client: &mut impl GenericClient, rows: &[NewJob]) -> Result<Vec<JobId>> {
    let error = |e| missing_table(e, "the caller's connection");
    if rows.len() <= crate::INSERT_BATCH {
        return insert(&mut Typed(client), rows).map_err(error);
    }
    // Several statements, all or none: a transaction, or a savepoint inside the caller's.
    let mut tx = client.transaction().map_err(error)?;
    let ids = insert_batches(&mut Typed(&mut tx), rows).map_err(error)?;
    tx.commit().map_err(error)?;
    Ok(ids)
}

fn insert_batches(q: &mut impl Query, rows: &[NewJob]) -> Result<Vec<JobId>, postgres::Error> {
    let mut ids = Vec::with_capacity(rows.len());
    for batch in rows.chunks(crate::INSERT_BATCH) {
        ids.extend(insert(q, batch)?);
    }
    Ok(ids)
}

fn insert(q: &mut impl Query, rows: &[NewJob]) -> Result<Vec<JobId>, postgres::Error> {
    let result = match rows {
        [] => return Ok(Vec::new()),
        [row] => {
            let (at, delay) = run_at_parts(row.run_at);
            q.query(
                INSERT_ONE,
                INSERT_ONE_TYPES,
                &[
                    &row.name,
                    &row.handler,
                    &row.priority,
                    &row.queue,
                    &at,
                    &delay,
                    &row.max_run_time,
                ],
            )?
        }
        rows => {
            let a = InsertArrays::of(rows);
            q.query(
                INSERT_MANY,
                INSERT_MANY_TYPES,
                &[
                    &a.names,
                    &a.handlers,
                    &a.priorities,
                    &a.queues,
                    &a.at,
                    &a.delays,
                    &a.max_run_times,
                ],
            )?
        }
    };
    Ok(result.iter().map(|r| r.get(0)).collect())
}

/// The claim: lock up to `$4` ready rows, skipping rows other workers hold, in one statement.
/// Only a registered worker claims (the `dj_workers` check is one InitPlan, run once): a
/// worker that was declared dead cannot take new rows under its old name.
/// The CTE picks ids with `FOR UPDATE SKIP LOCKED`; the UPDATE joins on them (a CTE join,
/// never `IN (...)`, which lets the planner lock extra rows). Two forms, so that each has a
/// plan that walks an index in claim order: any queue (`delayed_jobs_ready`), or listed
/// queues (`delayed_jobs_queue_ready`, `$5`).
macro_rules! claim_sql {
    ($queue_predicate:literal) => {
        concat!(
            "WITH picked AS ( \
                 SELECT id FROM delayed_jobs \
                 WHERE failed_at IS NULL AND locked_at IS NULL AND run_at <= now() \
                   AND priority >= $2 AND priority <= $3 \
                   AND EXISTS (SELECT 1 FROM dj_workers WHERE name = $1) ",
            $queue_predicate,
            " ORDER BY priority, run_at \
                 LIMIT $4 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE delayed_jobs AS j SET locked_at = now(), locked_by = $1, started_at = NULL \
             FROM picked WHERE j.id = picked.id \
             RETURNING j.id, j.priority, j.attempts, j.handler, j.last_error, j.run_at, j.locked_at, \
                       j.failed_at, j.locked_by, j.queue, j.created_at, j.updated_at, j.name, j.max_run_time, \
                       j.started_at, j.crashes"
        )
    };
}

/// The claim for a worker of every queue.
#[doc(hidden)]
pub const CLAIM: &str = claim_sql!("");
/// The claim for a worker of listed queues (`$5`).
#[doc(hidden)]
pub const CLAIM_QUEUES: &str = claim_sql!("AND queue = ANY($5::text[])");

const COMPLETE: &str = "DELETE FROM delayed_jobs WHERE id = ANY($1) AND locked_by = $2";

const RETRY: &str = "UPDATE delayed_jobs AS j \
     SET attempts = t.attempts, last_error = t.err, run_at = now() + t.delay * interval '1 second', \
         locked_at = CASE WHEN t.release THEN NULL ELSE now() END, \
         locked_by = CASE WHEN t.release THEN NULL ELSE j.locked_by END, updated_at = now() \
     FROM unnest($1::int8[], $2::int4[], $3::float8[], $4::text[], $5::bool[]) \
          AS t(id, attempts, delay, err, release) \
     WHERE j.id = t.id AND j.locked_by = $6";

const FAIL_KEEP: &str = "UPDATE delayed_jobs AS j \
     SET attempts = t.attempts, last_error = t.err, failed_at = now(), \
         locked_at = NULL, locked_by = NULL, updated_at = now() \
     FROM unnest($1::int8[], $2::int4[], $3::text[]) AS t(id, attempts, err) \
     WHERE j.id = t.id AND j.locked_by = $4";

const UNLOCK: &str = "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL \
     WHERE id = ANY($1) AND locked_by = $2";

const MARK_STARTED: &str = "UPDATE delayed_jobs SET started_at = now() \
     WHERE id = ANY($1) AND locked_by = $2 AND started_at IS NULL";

const RELEASE_ORPHANED: &str = "UPDATE delayed_jobs \
     SET locked_at = NULL, locked_by = NULL, crashes = crashes + 1 \
     WHERE id = ANY($1) AND locked_by = $2";

const WORKER_COLUMNS: &str = "name, host, pid, queues, version, started_at, heartbeat_at, running";

impl Store for PgStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn migrate(&self) -> Result<Vec<u32>> {
        self.run(|conn| {
            let mut tx = conn.client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtext('dj: migrate'))", &[])?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS dj_schema_migrations ( \
                     version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            )?;
            let done: Vec<i32> = tx
                .query("SELECT version FROM dj_schema_migrations", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut applied = Vec::new();
            for &(version, sql) in MIGRATIONS {
                if done.contains(&(version as i32)) {
                    continue;
                }
                tx.batch_execute(sql)?;
                tx.execute(
                    "INSERT INTO dj_schema_migrations (version) VALUES ($1)",
                    &[&(version as i32)],
                )?;
                applied.push(version);
            }
            tx.commit()?;
            conn.statements.clear();
            Ok(applied)
        })
    }

    fn check_schema(&self) -> Result<()> {
        self.run(|conn| {
            conn.client
                .query(&format!("SELECT {COLUMNS} FROM delayed_jobs LIMIT 0"), &[])?;
            conn.client.query(
                &format!("SELECT {WORKER_COLUMNS} FROM dj_workers LIMIT 0"),
                &[],
            )?;
            conn.client.query(
                "SELECT task, ran_at, ran_by FROM dj_maintenance LIMIT 0",
                &[],
            )?;
            Ok(())
        })
    }

    fn now(&self) -> Result<SystemTime> {
        self.run(|conn| Ok(conn.query("SELECT now()", &[], &[])?[0].get(0)))
    }

    fn job_insert_many(&self, rows: &[NewJob]) -> Result<Vec<JobId>> {
        self.run(|conn| {
            if rows.len() <= crate::INSERT_BATCH {
                return insert(conn, rows);
            }
            // One commit for all the batches (the prepared statements stay in use).
            conn.client.batch_execute("BEGIN")?;
            match insert_batches(conn, rows) {
                Ok(ids) => {
                    conn.client.batch_execute("COMMIT")?;
                    Ok(ids)
                }
                Err(e) => {
                    let _ = conn.client.batch_execute("ROLLBACK");
                    Err(e)
                }
            }
        })
    }

    fn job_claim(&self, p: &ClaimParams<'_>) -> Result<Vec<JobRow>> {
        let min = p.min_priority.unwrap_or(i32::MIN);
        let max = p.max_priority.unwrap_or(i32::MAX);
        let limit = p.limit as i64;
        let mut jobs: Vec<JobRow> = self.run(|conn| {
            let types = [
                Type::TEXT,
                Type::INT4,
                Type::INT4,
                Type::INT8,
                Type::TEXT_ARRAY,
            ];
            let rows = if p.queues.is_empty() {
                conn.query(CLAIM, &types[..4], &[&p.worker, &min, &max, &limit])?
            } else {
                conn.query(
                    CLAIM_QUEUES,
                    &types,
                    &[&p.worker, &min, &max, &limit, &p.queues],
                )?
            };
            Ok(rows.iter().map(job_row).collect())
        })?;
        super::claim_order(&mut jobs);
        Ok(jobs)
    }

    fn job_complete(&self, worker: &str, ids: &[JobId]) -> Result<()> {
        self.run(|conn| {
            conn.execute(COMPLETE, &[Type::INT8_ARRAY, Type::TEXT], &[&ids, &worker])?;
            Ok(())
        })
    }

    fn job_retry(&self, worker: &str, retries: &[Retry]) -> Result<()> {
        if retries.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = retries.iter().map(|r| r.id).collect();
        let attempts: Vec<i32> = retries.iter().map(|r| r.attempts).collect();
        let delays: Vec<f64> = retries.iter().map(|r| r.delay.as_secs_f64()).collect();
        let errors: Vec<&str> = retries.iter().map(|r| r.last_error.as_str()).collect();
        let release: Vec<bool> = retries.iter().map(|r| r.release).collect();
        self.run(|conn| {
            conn.execute(
                RETRY,
                &[
                    Type::INT8_ARRAY,
                    Type::INT4_ARRAY,
                    Type::FLOAT8_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::BOOL_ARRAY,
                    Type::TEXT,
                ],
                &[&ids, &attempts, &delays, &errors, &release, &worker],
            )?;
            Ok(())
        })
    }

    fn job_fail(&self, worker: &str, fails: &[Fail]) -> Result<()> {
        let (destroy, keep): (Vec<&Fail>, Vec<&Fail>) = fails.iter().partition(|f| f.destroy);
        self.run(|conn| {
            if !destroy.is_empty() {
                let ids: Vec<i64> = destroy.iter().map(|f| f.id).collect();
                conn.execute(COMPLETE, &[Type::INT8_ARRAY, Type::TEXT], &[&ids, &worker])?;
            }
            if !keep.is_empty() {
                let ids: Vec<i64> = keep.iter().map(|f| f.id).collect();
                let attempts: Vec<i32> = keep.iter().map(|f| f.attempts).collect();
                let errors: Vec<&str> = keep.iter().map(|f| f.last_error.as_str()).collect();
                conn.execute(
                    FAIL_KEEP,
                    &[
                        Type::INT8_ARRAY,
                        Type::INT4_ARRAY,
                        Type::TEXT_ARRAY,
                        Type::TEXT,
                    ],
                    &[&ids, &attempts, &errors, &worker],
                )?;
            }
            Ok(())
        })
    }

    fn job_unlock(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.run(|conn| conn.execute(UNLOCK, &[Type::INT8_ARRAY, Type::TEXT], &[&ids, &worker]))
    }

    fn job_mark_started(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.run(|conn| {
            conn.execute(
                MARK_STARTED,
                &[Type::INT8_ARRAY, Type::TEXT],
                &[&ids, &worker],
            )
        })
    }

    fn job_release_orphaned(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.run(|conn| {
            conn.execute(
                RELEASE_ORPHANED,
                &[Type::INT8_ARRAY, Type::TEXT],
                &[&ids, &worker],
            )
        })
    }

    fn job_unlock_worker(&self, worker: &str) -> Result<u64> {
        self.run(|conn| {
            conn.execute(
                "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL WHERE locked_by = $1",
                &[Type::TEXT],
                &[&worker],
            )
        })
    }

    fn job_list(&self, filter: &JobFilter) -> Result<Vec<JobRow>> {
        let statement = filter::list(&DIALECT, filter, COLUMNS);
        self.run(|conn| {
            let rows = conn
                .client
                .query(statement.sql.as_str(), &params(&statement))?;
            Ok(rows.iter().map(job_row).collect())
        })
    }

    fn job_count(&self, filter: &JobFilter) -> Result<i64> {
        let statement = filter::count(&DIALECT, filter);
        self.run(|conn| {
            Ok(conn
                .client
                .query_one(statement.sql.as_str(), &params(&statement))?
                .get(0))
        })
    }

    fn job_delete(&self, filter: &JobFilter) -> Result<u64> {
        let statement = filter::delete(&DIALECT, filter);
        self.run(|conn| {
            conn.client
                .execute(statement.sql.as_str(), &params(&statement))
        })
    }

    fn job_retry_now(&self, filter: &JobFilter) -> Result<u64> {
        let statement = filter::retry_now(&DIALECT, filter);
        self.run(|conn| {
            conn.client
                .execute(statement.sql.as_str(), &params(&statement))
        })
    }

    fn job_stats(&self) -> Result<Vec<QueueStats>> {
        self.run(|conn| {
            let rows = conn.query(
                "SELECT queue, \
                   count(*) FILTER (WHERE failed_at IS NULL AND locked_at IS NULL AND run_at <= now()), \
                   count(*) FILTER (WHERE failed_at IS NULL AND locked_at IS NULL AND run_at > now()), \
                   count(*) FILTER (WHERE failed_at IS NULL AND locked_at IS NOT NULL), \
                   count(*) FILTER (WHERE failed_at IS NOT NULL), \
                   extract(epoch FROM now() - min(run_at) FILTER ( \
                       WHERE failed_at IS NULL AND locked_at IS NULL AND run_at <= now()))::float8 \
                 FROM delayed_jobs GROUP BY queue ORDER BY queue NULLS FIRST",
                &[],
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| QueueStats {
                    queue: r.get(0),
                    ready: r.get(1),
                    scheduled: r.get(2),
                    running: r.get(3),
                    failed: r.get(4),
                    oldest_ready_age: r.get(5),
                })
                .collect())
        })
    }

    fn worker_register(&self, w: &WorkerInfo<'_>) -> Result<()> {
        let queues = w.queues_column();
        self.run(|conn| {
            conn.execute(
                "INSERT INTO dj_workers (name, host, pid, queues, version) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name) DO UPDATE SET host = $2, pid = $3, queues = $4, version = $5, \
                     started_at = now(), heartbeat_at = now(), running = 0",
                &[Type::TEXT, Type::TEXT, Type::INT4, Type::TEXT, Type::TEXT],
                &[&w.name, &w.host, &w.pid, &queues, &VERSION],
            )?;
            Ok(())
        })
    }

    fn worker_heartbeat(&self, name: &str, running: i32) -> Result<bool> {
        self.run(|conn| {
            let n = conn.execute(
                "UPDATE dj_workers SET heartbeat_at = now(), running = $2 WHERE name = $1",
                &[Type::TEXT, Type::INT4],
                &[&name, &running],
            )?;
            Ok(n > 0)
        })
    }

    fn worker_remove(&self, name: &str, stale_after: Option<Duration>) -> Result<bool> {
        let secs = stale_after.map(|d| d.as_secs_f64());
        self.run(|conn| {
            let n = conn.execute(
                "DELETE FROM dj_workers WHERE name = $1 \
                 AND ($2::float8 IS NULL OR heartbeat_at < now() - $2 * interval '1 second')",
                &[Type::TEXT, Type::FLOAT8],
                &[&name, &secs],
            )?;
            Ok(n > 0)
        })
    }

    fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        self.run(|conn| {
            let rows = conn.query(
                concat!(
                    "SELECT name, host, pid, queues, version, started_at, heartbeat_at, running ",
                    "FROM dj_workers ORDER BY name"
                ),
                &[],
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| WorkerRow {
                    name: r.get(0),
                    host: r.get(1),
                    pid: r.get(2),
                    queues: r.get(3),
                    version: r.get(4),
                    started_at: r.get(5),
                    heartbeat_at: r.get(6),
                    running: r.get(7),
                })
                .collect())
        })
    }

    fn maintenance_claim(&self, task: &str, worker: &str, every: Duration) -> Result<bool> {
        let secs = every.as_secs_f64();
        self.run(|conn| {
            let n = conn.execute(
                "UPDATE dj_maintenance SET ran_at = now(), ran_by = $2 \
                 WHERE task = $1 AND ran_at <= now() - $3 * interval '1 second'",
                &[Type::TEXT, Type::TEXT, Type::FLOAT8],
                &[&task, &worker, &secs],
            )?;
            Ok(n > 0)
        })
    }

    fn wait_for_jobs(&self, timeout: Duration, stop: &StopFlag) -> bool {
        let deadline = Instant::now() + timeout;
        let mut slot = self.listener.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(Client::is_closed) {
            match self.listen() {
                Ok(client) => {
                    *slot = Some(client);
                    // Jobs may have arrived before we listened: look again at once.
                    return true;
                }
                Err(e) => {
                    tracing::debug!("LISTEN unavailable, polling instead: {e}");
                    *slot = None;
                    drop(slot);
                    stop.sleep(timeout);
                    return false;
                }
            }
        }
        loop {
            let now = Instant::now();
            if stop.is_set() || now >= deadline {
                return false;
            }
            let slice = (deadline - now).min(Duration::from_millis(100));
            let client = slot.as_mut().expect("listener present");
            let next = client
                .notifications()
                .timeout_iter(slice)
                .next()
                .map(|n| n.is_some());
            match next {
                Ok(true) => {
                    // Drain what else arrived: one wake-up is enough.
                    let mut notifications = client.notifications();
                    let mut pending = notifications.iter();
                    while let Ok(Some(_)) = pending.next() {}
                    return true;
                }
                Ok(false) => continue,
                Err(e) => {
                    tracing::debug!("LISTEN connection lost, polling until it is back: {e}");
                    *slot = None;
                    return false;
                }
            }
        }
    }
}

impl PgStore {
    fn listen(&self) -> Result<Client> {
        let mut client = self.pool.manager().config.connect(NoTls)?;
        client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        Ok(client)
    }
}

/// PostgreSQL's spelling of the filtered commands.
const DIALECT: filter::Dialect = filter::Dialect {
    now: "now()",
    placeholder: |n| format!("${n}"),
};

/// A filtered statement's values, bound as PostgreSQL parameters.
fn params(statement: &filter::Statement) -> Vec<&(dyn ToSql + Sync)> {
    statement
        .values
        .iter()
        .map(|v| match v {
            filter::Value::Text(t) => t as &(dyn ToSql + Sync),
            filter::Value::Int(i) => i as &(dyn ToSql + Sync),
        })
        .collect()
}

/// The schema SQL, as `schema` prints it.
pub(crate) fn schema_sql() -> String {
    super::schema_of(MIGRATIONS)
}

#[cfg(test)]
mod tests {
    use super::hide_password;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            hide_password("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(hide_password("postgres://u@h/db"), "postgres://u@h/db");
    }
}
