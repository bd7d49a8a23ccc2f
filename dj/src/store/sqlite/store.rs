//! The [`Store`] impl: each method one statement (or one short write transaction) of `sql`,
//! its rows mapped by `rows`.

use std::time::{Duration, SystemTime};

use rusqlite::{params, DatabaseName, OptionalExtension};

use super::insert::{self, returning};
use super::rows::{self, ids_json, job_row, params, time};
use super::sql::{self, DIALECT};
use super::SqliteStore;
use crate::error::Result;
use crate::model::{
    unix_secs, Attempt, Cancel, EnqueueOutcome, JobFilter, JobId, JobResult, JobRow, NewJob,
    NewWorkflow, Progress, QueueStats, RateLimit, RateScope, ScheduleDef, ScheduleRow, StepState,
    StoredRate, WorkerRow, WorkflowCancel, WorkflowId, WorkflowInfo, WorkflowRun, WorkflowState,
};
use crate::stop::StopFlag;
use crate::store::{
    claim_order, filter, rate_limit_of, stored_result, ClaimParams, CronFire, Fail, FailedAttempt,
    Recorded, Retry, Store, WorkerInfo, VERSION,
};

impl Store for SqliteStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn migrate(&self) -> Result<Vec<u32>> {
        self.write(|tx| {
            tx.execute_batch(sql::CREATE_MIGRATIONS)?;
            let mut applied = Vec::new();
            for &(version, migration) in super::MIGRATIONS {
                let done: bool = tx.query_row(sql::MIGRATION_DONE, [version], |r| r.get(0))?;
                if done {
                    continue;
                }
                tx.execute_batch(migration)?;
                tx.execute(&sql::MIGRATION_APPLIED, [version])?;
                applied.push(version);
            }
            Ok(applied)
        })
    }

    fn check_schema(&self) -> Result<()> {
        self.run(|conn| {
            for check in sql::SCHEMA_CHECKS.iter() {
                conn.prepare(check)?;
            }
            Ok(())
        })
    }

    fn check_writable(&self) -> Result<()> {
        // SQLite opens a file it cannot write read-only, and fails only at the first write.
        if self.pool.get()?.is_readonly(DatabaseName::Main)? {
            return Err(super::connect::read_only(
                &self.shown,
                Some(&self.path),
                false,
            ));
        }
        Ok(())
    }

    fn now(&self) -> Result<SystemTime> {
        self.run(|conn| Ok(time(conn.query_row(sql::NOW_SECS, [], |r| r.get(0))?)))
    }

    fn job_insert_many(&self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
        self.run(|conn| insert::rusqlite(conn, rows))
    }

    /// Limited jobs first (their limits bound how many), then the rest with the room left.
    /// The limited claim is one write transaction: SQLite's single writer means no other
    /// claim runs between its count of running rows and its update.
    fn job_claim(&self, p: &ClaimParams<'_>) -> Result<Vec<JobRow>> {
        let queues = serde_json::to_string(p.queues).expect("queue names serialize");
        let min = p.min_priority.unwrap_or(i32::MIN);
        let max = p.max_priority.unwrap_or(i32::MAX);
        let mut jobs = if self.limited_work()? {
            let window = (p.limit as i64 * 4).max(100);
            let cursor = self.keys.cursor();
            let (jobs, refill) = self.write(|tx| {
                let jobs = returning(
                    &mut *tx.prepare_cached(&sql::CLAIM_LIMITED)?,
                    params![p.worker, min, max, queues, p.limit as i64, window, cursor],
                    job_row,
                )?;
                let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
                if !ids.is_empty() {
                    tx.prepare_cached(sql::RATE_RECORD)?
                        .execute([ids_json(&ids)])?;
                }
                let refill = if jobs.len() < p.limit {
                    tx.prepare_cached(&sql::RATE_REFILL)?
                        .query_row([], |r| r.get::<_, Option<f64>>(0))?
                } else {
                    None
                };
                Ok((jobs, refill))
            })?;
            self.refill.set(refill);
            self.keys.claimed(&jobs);
            jobs
        } else {
            Vec::new()
        };
        let room = p.limit - jobs.len();
        if room > 0 {
            jobs.extend(self.run(|conn| {
                returning(
                    &mut *conn.prepare_cached(&sql::CLAIM)?,
                    params![p.worker, min, max, queues, room as i64],
                    job_row,
                )
            })?);
        }
        claim_order(&mut jobs);
        Ok(jobs)
    }

    fn job_complete(&self, worker: &str, ids: &[JobId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.run(|conn| {
            conn.prepare_cached(sql::COMPLETE)?
                .execute(params![ids_json(ids), worker])?;
            Ok(())
        })
    }

    fn job_complete_recorded(&self, worker: &str, recorded: &[Recorded]) -> Result<()> {
        if recorded.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut complete = tx.prepare_cached(sql::COMPLETE_ONE)?;
            let mut keep = tx.prepare_cached(&sql::RESULT_KEEP)?;
            for r in recorded {
                let name: Option<String> = complete
                    .query_row(params![r.id, worker], |row| row.get(0))
                    .optional()?;
                if let Some(name) = name {
                    keep.execute(params![r.id, name, "succeeded", r.value, None::<String>])?;
                }
            }
            Ok(())
        })
    }

    fn result_get(&self, id: JobId) -> Result<Option<JobResult>> {
        let row = self.run(|conn| {
            conn.prepare_cached(sql::RESULT_GET)?
                .query_row(params![id], |row| {
                    Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()
        })?;
        row.map(|(state, value, error)| stored_result(id, &state, value, error))
            .transpose()
    }

    fn result_prune(&self, older_than: Duration, limit: i64) -> Result<u64> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(sql::RESULT_PRUNE)?
                .execute(params![older_than.as_secs_f64(), limit])?;
            Ok(n as u64)
        })
    }

    fn progress_write(&self, reports: &[(JobId, f64, String)]) -> Result<()> {
        self.write(|tx| {
            let mut write = tx.prepare_cached(&sql::PROGRESS_WRITE)?;
            for (id, fraction, message) in reports {
                write.execute(params![id, fraction, message])?;
            }
            Ok(())
        })
    }

    fn progress_clear(&self, ids: &[JobId]) -> Result<()> {
        self.run(|conn| {
            conn.prepare_cached(sql::PROGRESS_CLEAR)?
                .execute(params![ids_json(ids)])?;
            Ok(())
        })
    }

    fn progress_of(&self, ids: &[JobId]) -> Result<Vec<(JobId, Progress)>> {
        self.run(|conn| {
            conn.prepare_cached(sql::PROGRESS_OF)?
                .query_map(params![ids_json(ids)], |row| {
                    let progress = Progress {
                        fraction: row.get(1)?,
                        message: row.get(2)?,
                        updated_at: time(row.get(3)?),
                    };
                    Ok((row.get(0)?, progress))
                })?
                .collect()
        })
    }

    fn progress_prune(&self) -> Result<u64> {
        self.run(|conn| {
            let n = conn.prepare_cached(sql::PROGRESS_PRUNE)?.execute([])?;
            Ok(n as u64)
        })
    }

    fn attempt_list(&self, id: JobId) -> Result<Vec<Attempt>> {
        self.run(|conn| {
            conn.prepare_cached(sql::ATTEMPT_LIST)?
                .query_map(params![id], |row| {
                    Ok(Attempt {
                        attempt: row.get(0)?,
                        worker: row.get(1)?,
                        started_at: time(row.get(2)?),
                        finished_at: time(row.get(3)?),
                        error: row.get(4)?,
                    })
                })?
                .collect()
        })
    }

    fn attempt_prune(&self, older_than: Duration, limit: i64) -> Result<u64> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(sql::ATTEMPT_PRUNE)?
                .execute(params![older_than.as_secs_f64(), limit])?;
            Ok(n as u64)
        })
    }

    fn job_retry(&self, worker: &str, retries: &[Retry]) -> Result<()> {
        if retries.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            record_attempts(tx, worker, &FailedAttempt::of_retries(retries))?;
            let mut statement = tx.prepare_cached(&sql::RETRY)?;
            for r in retries {
                statement.execute(params![
                    r.id,
                    r.attempts,
                    r.last_error,
                    r.delay.as_secs_f64(),
                    worker,
                    r.release,
                    r.snoozed
                ])?;
            }
            Ok(())
        })
    }

    fn job_fail(&self, worker: &str, fails: &[Fail]) -> Result<()> {
        if fails.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            record_attempts(tx, worker, &FailedAttempt::of_fails(fails))?;
            let mut held = tx.prepare_cached(sql::HELD_NAME)?;
            let mut delete = tx.prepare_cached(sql::FAIL_DELETE)?;
            let mut keep = tx.prepare_cached(&sql::FAIL_KEEP)?;
            let mut result = tx.prepare_cached(&sql::RESULT_KEEP)?;
            for f in fails {
                if f.destroy {
                    let name: Option<String> = held
                        .query_row(params![f.id, worker], |row| row.get(0))
                        .optional()?;
                    // The failure is kept before the row goes, so that the delete's trigger
                    // counts a workflow step as failed, not succeeded.
                    if let Some(name) = name {
                        let error = Some(&f.last_error);
                        result.execute(params![f.id, name, "failed", None::<String>, error])?;
                        delete.execute(params![f.id, worker])?;
                    }
                } else {
                    keep.execute(params![f.id, f.attempts, f.last_error, worker])?;
                }
            }
            Ok(())
        })
    }

    fn job_held(&self, worker: &str, ids: &[JobId]) -> Result<Vec<JobId>> {
        self.run(|conn| {
            conn.prepare_cached(sql::HELD)?
                .query_map(params![ids_json(ids), worker], |row| row.get(0))?
                .collect()
        })
    }

    fn job_unlock(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.waking(|tx| {
            tx.prepare_cached(sql::UNLOCK)?
                .execute(params![ids_json(ids), worker])
        })
    }

    fn job_mark_started(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(&sql::MARK_STARTED)?
                .execute(params![ids_json(ids), worker])?;
            Ok(n as u64)
        })
    }

    fn job_release_orphaned(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.waking(|tx| {
            tx.prepare_cached(sql::RELEASE_ORPHANED)?
                .execute(params![ids_json(ids), worker])
        })
    }

    fn job_unlock_worker(&self, worker: &str) -> Result<u64> {
        self.waking(|tx| tx.execute(sql::UNLOCK_WORKER, [worker]))
    }

    fn job_list(&self, filter: &JobFilter) -> Result<Vec<JobRow>> {
        let statement = filter::list(&DIALECT, filter, sql::COLUMNS);
        self.run(|conn| {
            let mut prepared = conn.prepare(&statement.sql)?;
            let rows = prepared.query_map(params(&statement), job_row)?;
            rows.collect()
        })
    }

    fn job_count(&self, filter: &JobFilter) -> Result<i64> {
        let statement = filter::count(&DIALECT, filter);
        self.run(|conn| conn.query_row(&statement.sql, params(&statement), |r| r.get(0)))
    }

    /// The workflow steps among the rows are named first, so that their workflows count
    /// them as cancelled (see [`filter::delete_marks`]).
    fn job_delete(&self, filter: &JobFilter) -> Result<u64> {
        let marks = filter::delete_marks(&DIALECT, filter);
        let statement = filter::delete(&DIALECT, filter);
        self.write(|tx| {
            tx.execute(&marks.sql, params(&marks))?;
            let n = tx.execute(&statement.sql, params(&statement))?;
            tx.execute(filter::DELETE_MARKS_CLEAR, [])?;
            Ok(n as u64)
        })
    }

    /// Every change makes rows claimable: idle workers are woken.
    fn job_update(&self, filter: &JobFilter, change: filter::Change) -> Result<u64> {
        let statement = filter::update(&DIALECT, filter, change);
        self.waking(|tx| tx.execute(&statement.sql, params(&statement)))
    }

    fn job_stats(&self) -> Result<Vec<QueueStats>> {
        self.run(|conn| {
            let mut statement = conn.prepare_cached(&sql::STATS)?;
            let rows = statement.query_map([], rows::queue_stats)?;
            rows.collect()
        })
    }

    fn job_count_by_locker(&self) -> Result<Vec<(Option<String>, i64)>> {
        let sql = filter::lockers(&DIALECT);
        self.run(|conn| {
            let mut statement = conn.prepare_cached(&sql)?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    fn worker_register(&self, w: &WorkerInfo<'_>) -> Result<()> {
        let queues = w.queues_column();
        self.run(|conn| {
            conn.prepare_cached(&sql::WORKER_REGISTER)?
                .execute(params![w.name, w.host, w.pid, queues, VERSION])?;
            Ok(())
        })
    }

    fn worker_heartbeat(&self, name: &str, running: i32) -> Result<bool> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(&sql::WORKER_HEARTBEAT)?
                .execute(params![name, running])?;
            Ok(n > 0)
        })
    }

    fn worker_remove(&self, name: &str, stale_after: Option<Duration>) -> Result<bool> {
        let secs = stale_after.map(|d| d.as_secs_f64());
        self.run(|conn| {
            let n = conn
                .prepare_cached(sql::WORKER_REMOVE)?
                .execute(params![name, secs])?;
            Ok(n > 0)
        })
    }

    fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        self.run(|conn| {
            let mut statement = conn.prepare_cached(&sql::WORKER_LIST)?;
            let rows = statement.query_map([], rows::worker_row)?;
            rows.collect()
        })
    }

    fn job_age(&self, waited: Duration, batch: i64) -> Result<u64> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(&sql::AGE)?
                .execute(params![waited.as_secs_f64(), batch])?;
            Ok(n as u64)
        })
    }

    fn job_prune_failed(&self, older_than: Duration, limit: i64) -> Result<u64> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(sql::PRUNE_FAILED)?
                .execute(params![older_than.as_secs_f64(), limit])?;
            Ok(n as u64)
        })
    }

    fn queue_pause(&self, queue: &str, paused: bool) -> Result<bool> {
        if !paused {
            // Idle workers look again at once.
            return Ok(self.waking(|tx| {
                tx.prepare_cached(sql::QUEUE_RESUME)?
                    .execute(params![queue])
            })? > 0);
        }
        self.run(|conn| {
            let n = conn
                .prepare_cached(sql::QUEUE_PAUSE)?
                .execute(params![queue])?;
            Ok(n > 0)
        })
    }

    fn queue_paused(&self) -> Result<Vec<String>> {
        self.run(|conn| {
            let mut statement = conn.prepare_cached(sql::QUEUE_PAUSED)?;
            let rows = statement.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn job_cancel(&self, id: JobId) -> Result<Cancel> {
        self.write(|tx| {
            let running: Option<bool> = tx
                .query_row(sql::CANCEL_RUNNING, [id], |r| r.get(0))
                .optional()?;
            Ok(match running {
                None => Cancel::NotFound,
                Some(true) => {
                    tx.execute(sql::CANCEL_REQUEST, [id])?;
                    Cancel::Requested
                }
                Some(false) => {
                    tx.execute(&sql::CANCEL_DEQUEUE, [id])?;
                    Cancel::Dequeued
                }
            })
        })
    }

    fn workflow_insert(&self, workflow: &NewWorkflow) -> Result<WorkflowRun> {
        SqliteStore::workflow_insert(self, workflow)
    }

    fn workflow_get(&self, id: WorkflowId) -> Result<Option<WorkflowInfo>> {
        SqliteStore::workflow_get(self, id)
    }

    fn workflow_cancel(&self, id: WorkflowId) -> Result<(WorkflowCancel, Vec<JobId>)> {
        SqliteStore::workflow_cancel(self, id)
    }

    fn workflow_retry(&self, id: WorkflowId) -> Result<Option<u64>> {
        SqliteStore::workflow_retry(self, id)
    }

    fn workflow_list(&self, limit: i64) -> Result<Vec<WorkflowInfo>> {
        SqliteStore::workflow_list(self, limit)
    }

    fn workflow_counts(&self) -> Result<Vec<(WorkflowState, i64)>> {
        SqliteStore::workflow_counts(self)
    }

    fn workflow_prune(&self, older_than: Duration, limit: i64) -> Result<u64> {
        SqliteStore::workflow_prune(self, older_than, limit)
    }

    fn batch_add(&self, id: WorkflowId, rows: &[NewJob]) -> Result<Vec<JobId>> {
        SqliteStore::batch_add(self, id, rows)
    }

    fn workflow_of(&self, job: JobId) -> Result<Option<WorkflowId>> {
        SqliteStore::workflow_of(self, job)
    }

    fn workflow_dependency(&self, job: JobId, step: &str) -> Result<Option<JobId>> {
        SqliteStore::workflow_dependency(self, job, step)
    }

    fn workflow_step_state(&self, job: JobId) -> Result<Option<StepState>> {
        SqliteStore::workflow_step_state(self, job)
    }

    fn job_cancel_requested(&self, ids: &[JobId]) -> Result<Vec<JobId>> {
        self.run(|conn| {
            let mut statement = conn.prepare_cached(sql::CANCEL_REQUESTED)?;
            let rows = statement.query_map([ids_json(ids)], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn cancel_prune(&self) -> Result<u64> {
        self.run(|conn| Ok(conn.execute(sql::CANCEL_PRUNE, [])? as u64))
    }

    fn queue_limit(&self, queue: &str, max_running: Option<i32>) -> Result<bool> {
        self.run(|conn| {
            let n = match max_running {
                Some(max) => conn.execute(&sql::QUEUE_LIMIT_SET, params![queue, max])?,
                None => conn.execute(sql::QUEUE_LIMIT_REMOVE, [queue])?,
            };
            Ok(n > 0)
        })
    }

    fn queue_limits(&self) -> Result<Vec<(String, i32)>> {
        self.run(|conn| {
            let mut statement = conn.prepare_cached(sql::QUEUE_LIMITS)?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    fn rate_limit(&self, scope: &RateScope, rate: Option<StoredRate>) -> Result<bool> {
        let (kind, name) = (scope.kind(), scope.name());
        self.run(|conn| {
            let n = match rate {
                Some(r) => conn.execute(
                    &sql::RATE_LIMIT_SET,
                    params![kind, name, r.max_starts, r.period_ms],
                )?,
                None => conn.execute(sql::RATE_LIMIT_REMOVE, params![kind, name])?,
            };
            Ok(n > 0)
        })
    }

    fn rate_limits(&self) -> Result<Vec<RateLimit>> {
        self.run(|conn| {
            let mut statement = conn.prepare_cached(sql::RATE_LIMITS)?;
            let rows = statement.query_map([], |r| {
                Ok(rate_limit_of(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect()
        })
    }

    fn rate_prune(&self) -> Result<u64> {
        self.run(|conn| Ok(conn.execute(&sql::RATE_PRUNE, [])? as u64))
    }

    fn rate_refill(&self) -> Option<Duration> {
        self.refill.take()
    }

    fn throughput_add(&self, succeeded: i64, failed: i64) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(sql::THROUGHPUT_ADD)?
                .execute(params![succeeded, failed])?;
            tx.execute(sql::THROUGHPUT_TRIM, [])?;
            Ok(())
        })
    }

    fn throughput(&self, minutes: u32) -> Result<Vec<(SystemTime, i64, i64)>> {
        self.run(|conn| {
            let mut statement = conn.prepare_cached(sql::THROUGHPUT)?;
            let rows = statement.query_map([minutes], rows::throughput_row)?;
            rows.collect()
        })
    }

    fn cron_upsert(&self, s: &ScheduleDef, next: Option<SystemTime>) -> Result<()> {
        let next = next.map(unix_secs);
        self.run(|conn| {
            conn.prepare_cached(&sql::CRON_UPSERT)?.execute(params![
                s.name,
                s.expression,
                s.tz,
                s.missed.as_str(),
                s.job_name,
                s.handler,
                s.queue,
                s.priority,
                s.from_code,
                next
            ])?;
            Ok(())
        })
    }

    fn cron_remove(&self, name: &str) -> Result<bool> {
        self.run(|conn| Ok(conn.execute(sql::CRON_REMOVE, [name])? > 0))
    }

    fn cron_list(&self) -> Result<Vec<ScheduleRow>> {
        self.run(|conn| {
            let mut statement = conn.prepare_cached(&sql::CRON_LIST)?;
            let rows = statement.query_map([], rows::schedule_row)?;
            rows.collect()
        })
    }

    fn cron_due(&self) -> Result<(SystemTime, Vec<ScheduleRow>)> {
        self.run(|conn| {
            let now: f64 = conn.query_row(sql::NOW_SECS, [], |r| r.get(0))?;
            let mut statement = conn.prepare_cached(&sql::CRON_DUE)?;
            let rows = statement.query_map([now], rows::schedule_row)?;
            Ok((time(now), rows.collect::<rusqlite::Result<_>>()?))
        })
    }

    /// Moves the schedule's next fire time if it is still the one the worker read, and in the
    /// same transaction inserts the firing's jobs.
    fn cron_fire(&self, fire: &CronFire<'_>) -> Result<bool> {
        let CronFire {
            name,
            expected,
            next,
            last,
            jobs,
        } = *fire;
        self.write(|tx| {
            let moved = tx.prepare_cached(&sql::CRON_MOVE)?.execute(params![
                name,
                unix_secs(expected),
                next.map(unix_secs),
                last.map(unix_secs)
            ])?;
            if moved == 0 {
                return Ok(false);
            }
            insert::within(tx, jobs)?;
            Ok(true)
        })
    }

    /// SQLite has no LISTEN: an idle worker reads the wake-up number (see `wakeups`) and
    /// claims as soon as it moves, else after `timeout`.
    fn wait_for_jobs(&self, timeout: Duration, stop: &StopFlag) -> bool {
        self.wait(timeout, stop)
    }

    fn maintenance_claim(&self, task: &str, worker: &str, every: Duration) -> Result<bool> {
        self.run(|conn| {
            let n = conn
                .prepare_cached(&sql::MAINTENANCE_CLAIM)?
                .execute(params![task, worker, every.as_secs_f64()])?;
            Ok(n > 0)
        })
    }
}

impl SqliteStore {
    /// Whether any limited job may be claimable: looked for at most once a second while none
    /// is found (see [`crate::store::LimitedProbe`]).
    fn limited_work(&self) -> Result<bool> {
        self.limited.look(|| {
            self.run(|conn| {
                conn.prepare_cached(&sql::LIMITED_WORK)?
                    .query_row([], |r| r.get(0))
            })
        })
    }
}

/// Records failed attempts in the history, in the transaction that writes their outcomes.
fn record_attempts(
    tx: &rusqlite::Transaction<'_>,
    worker: &str,
    failed: &[FailedAttempt],
) -> rusqlite::Result<()> {
    let mut record = tx.prepare_cached(&sql::ATTEMPT_RECORD)?;
    let mut trim = tx.prepare_cached(&sql::ATTEMPT_TRIM)?;
    for a in failed {
        let ran_for = a.ran_for.map(|d| d.as_secs_f64());
        record.execute(params![a.id, a.attempt, worker, a.error, ran_for])?;
        trim.execute(params![a.id, a.attempt])?;
    }
    Ok(())
}
