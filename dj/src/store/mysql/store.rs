//! The [`Store`] impl: each method one statement or one short transaction of `sql`, its rows
//! mapped by `rows`.

use std::time::{Duration, SystemTime};

use mysql::prelude::Queryable;
use mysql::Value;

use super::rows::{self, col, id_list, job_row, params, time};
use super::sql::{self, DIALECT};
use super::{changed, MysqlStore};
use super::{insert, workflow};
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

impl Store for MysqlStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    /// One `migrate` at a time per database (a named lock): MySQL's DDL commits as it goes,
    /// so two at once could both apply a migration.
    fn migrate(&self) -> Result<Vec<u32>> {
        self.run(|conn| {
            let lock = "dj_migrate";
            let got: Option<i64> = conn.exec_first(sql::MIGRATE_LOCK, (lock,))?.flatten();
            if got != Some(1) {
                return Err(mysql::Error::DriverError(mysql::DriverError::SetupError));
            }
            let applied = (|| {
                conn.query_drop(sql::CREATE_MIGRATIONS)?;
                let done: Vec<u32> = conn.query(sql::MIGRATIONS_DONE)?;
                let mut applied = Vec::new();
                for &(version, migration) in super::MIGRATIONS {
                    if done.contains(&version) {
                        continue;
                    }
                    super::run_script(conn, migration)?;
                    conn.exec_drop(sql::MIGRATION_APPLIED, (version,))?;
                    applied.push(version);
                }
                // Migration 20 as first released had no procedures (a database migrated
                // then has the tables without them): made here where they are missing, never
                // dropped while present, since running workers call them.
                let routines: Option<i64> = conn.query_first(sql::WORKFLOW_ROUTINES_PRESENT)?;
                if routines != Some(4) {
                    super::run_script(conn, super::workflow_routines())?;
                }
                Ok(applied)
            })();
            let _ = conn.exec_drop(sql::MIGRATE_UNLOCK, (lock,));
            applied
        })
    }

    fn check_schema(&self) -> Result<()> {
        self.run(|conn| {
            for check in sql::SCHEMA_CHECKS.iter() {
                conn.query_drop(check)?;
            }
            Ok(())
        })
    }

    fn now(&self) -> Result<SystemTime> {
        self.run(|conn| Ok(time(conn.query_first(sql::NOW_SECS)?.unwrap_or_default())))
    }

    /// A deadlock (replacing enqueues of one key meeting at its row) runs the insert again,
    /// after a short random wait: InnoDB rolled it back whole.
    fn job_insert_many(&self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
        super::retry_deadlocks(|| self.run(|conn| insert::on_conn(conn, rows)))
    }

    /// Limited jobs first (their limits bound how many), then the rest with the room left.
    fn job_claim(&self, p: &ClaimParams<'_>) -> Result<Vec<JobRow>> {
        let min = p.min_priority.unwrap_or(i32::MIN);
        let max = p.max_priority.unwrap_or(i32::MAX);
        let mut jobs = if self.limited_work()? {
            self.claim_limited(p, min, max)?
        } else {
            Vec::new()
        };
        let room = p.limit - jobs.len();
        if room > 0 {
            let pick = sql::claim_pick(p.queues.len(), room);
            let mut values: Vec<Value> = vec![Value::from(min), Value::from(max)];
            values.extend(p.queues.iter().map(|q| Value::from(q.as_str())));
            jobs.extend(self.write(|tx| {
                if tx
                    .exec_first::<i64, _, _>(sql::WORKER_ALIVE, (p.worker,))?
                    .is_none()
                {
                    return Ok(Vec::new());
                }
                if let Some(n) = tx.query_first::<i64, _>(sql::WAKEUPS)? {
                    self.seen.store(n, std::sync::atomic::Ordering::Relaxed);
                }
                let ids: Vec<JobId> = tx.exec(&pick, values.clone())?;
                lock_rows(tx, p.worker, &ids)
            })?);
        }
        claim_order(&mut jobs);
        Ok(jobs)
    }

    fn job_complete(&self, worker: &str, ids: &[JobId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let n = self.run(|conn| changed(conn, &sql::complete(&id_list(ids)), (worker,)))?;
        if n == ids.len() as u64 {
            return Ok(());
        }
        // Workflow steps (or rows no longer held): the held steps, each finished with its
        // delete.
        self.write(|tx| {
            let steps: Vec<JobId> = tx.exec(sql::held_steps(&id_list(ids)), (worker,))?;
            for id in steps {
                if changed(tx, sql::DELETE_HELD, (id, worker))? == 1 {
                    workflow::finish(tx, id, true)?;
                }
            }
            Ok(())
        })
    }

    fn job_complete_recorded(&self, worker: &str, recorded: &[Recorded]) -> Result<()> {
        if recorded.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            for r in recorded {
                let held: Option<(String, bool)> = tx.exec_first(sql::HELD_NAME, (r.id, worker))?;
                if let Some((name, step)) = held {
                    tx.exec_drop(sql::DELETE_HELD, (r.id, worker))?;
                    tx.exec_drop(
                        sql::RESULT_KEEP.as_str(),
                        (r.id, name, "succeeded", &r.value, None::<String>),
                    )?;
                    if step {
                        workflow::finish(tx, r.id, true)?;
                    }
                }
            }
            Ok(())
        })
    }

    fn result_get(&self, id: JobId) -> Result<Option<JobResult>> {
        let row: Option<(String, Option<String>, Option<String>)> =
            self.run(|conn| conn.exec_first(sql::RESULT_GET, (id,)))?;
        row.map(|(state, value, error)| stored_result(id, &state, value, error))
            .transpose()
    }

    fn result_prune(&self, older_than: Duration, limit: i64) -> Result<u64> {
        self.run(|conn| changed(conn, sql::RESULT_PRUNE, (older_than.as_secs_f64(), limit)))
    }

    fn progress_write(&self, reports: &[(JobId, f64, String)]) -> Result<()> {
        self.write(|tx| {
            for (id, fraction, message) in reports {
                tx.exec_drop(sql::PROGRESS_WRITE, (id, fraction, message))?;
            }
            Ok(())
        })
    }

    fn progress_clear(&self, ids: &[JobId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.run(|conn| conn.query_drop(sql::progress_clear(&id_list(ids))))
    }

    fn progress_of(&self, ids: &[JobId]) -> Result<Vec<(JobId, Progress)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.run(|conn| {
            let rows: Vec<mysql::Row> = conn.query(sql::progress_of(&id_list(ids)))?;
            (rows.into_iter())
                .map(|row| {
                    let progress = Progress {
                        fraction: col(&row, 1)?,
                        message: col(&row, 2)?,
                        updated_at: time(col(&row, 3)?),
                    };
                    Ok((col(&row, 0)?, progress))
                })
                .collect()
        })
    }

    fn progress_prune(&self) -> Result<u64> {
        self.run(|conn| changed(conn, sql::PROGRESS_PRUNE, ()))
    }

    fn attempt_list(&self, id: JobId) -> Result<Vec<Attempt>> {
        self.run(|conn| {
            let rows: Vec<mysql::Row> = conn.exec(sql::ATTEMPT_LIST, (id,))?;
            (rows.into_iter())
                .map(|row| {
                    Ok(Attempt {
                        attempt: col(&row, 0)?,
                        worker: col(&row, 1)?,
                        started_at: time(col(&row, 2)?),
                        finished_at: time(col(&row, 3)?),
                        error: col(&row, 4)?,
                    })
                })
                .collect()
        })
    }

    fn attempt_prune(&self, older_than: Duration, limit: i64) -> Result<u64> {
        self.run(|conn| changed(conn, sql::ATTEMPT_PRUNE, (older_than.as_secs_f64(), limit)))
    }

    fn job_retry(&self, worker: &str, retries: &[Retry]) -> Result<()> {
        if retries.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            record_attempts(tx, worker, &FailedAttempt::of_retries(retries))?;
            for r in retries {
                let values: Vec<Value> = vec![
                    r.attempts.into(),
                    r.snoozed.into(),
                    r.last_error.as_str().into(),
                    i32::from(r.snoozed).into(),
                    r.delay.as_secs_f64().into(),
                    r.release.into(),
                    r.release.into(),
                    r.id.into(),
                    worker.into(),
                ];
                tx.exec_drop(sql::RETRY, values)?;
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
            for f in fails {
                if f.destroy {
                    let held: Option<(String, bool)> =
                        tx.exec_first(sql::HELD_NAME, (f.id, worker))?;
                    if let Some((name, step)) = held {
                        let error = Some(&f.last_error);
                        tx.exec_drop(
                            sql::RESULT_KEEP.as_str(),
                            (f.id, name, "failed", None::<String>, error),
                        )?;
                        tx.exec_drop(sql::DELETE_HELD, (f.id, worker))?;
                        if step {
                            workflow::finish(tx, f.id, false)?;
                        }
                    }
                } else {
                    let values = (f.attempts, &f.last_error, f.id, worker);
                    if changed(tx, sql::FAIL_KEEP, values)? == 0
                        && changed(tx, sql::FAIL_KEEP_STEP, values)? == 1
                    {
                        workflow::finish(tx, f.id, false)?;
                    }
                }
            }
            Ok(())
        })
    }

    fn job_held(&self, worker: &str, ids: &[JobId]) -> Result<Vec<JobId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.run(|conn| conn.exec(sql::held(&id_list(ids)), (worker,)))
    }

    fn job_unlock(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let statement = sql::unlock(&id_list(ids));
        self.waking(|tx| changed(tx, &statement, (worker,)))
    }

    fn job_mark_started(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.run(|conn| changed(conn, &sql::mark_started(&id_list(ids)), (worker,)))
    }

    fn job_release_orphaned(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let statement = sql::release_orphaned(&id_list(ids));
        self.waking(|tx| changed(tx, &statement, (worker,)))
    }

    fn job_unlock_worker(&self, worker: &str) -> Result<u64> {
        self.waking(|tx| changed(tx, sql::UNLOCK_WORKER, (worker,)))
    }

    fn job_list(&self, filter: &JobFilter) -> Result<Vec<JobRow>> {
        let statement = filter::list(&DIALECT, filter, sql::COLUMNS);
        self.run(|conn| {
            let rows: Vec<mysql::Row> = conn.exec(&statement.sql, params(&statement))?;
            rows.into_iter().map(job_row).collect()
        })
    }

    fn job_count(&self, filter: &JobFilter) -> Result<i64> {
        let statement = filter::count(&DIALECT, filter);
        self.run(|conn| {
            Ok(conn
                .exec_first(&statement.sql, params(&statement))?
                .unwrap_or_default())
        })
    }

    /// The workflow steps among the rows are finished with it, as not succeeded.
    fn job_delete(&self, filter: &JobFilter) -> Result<u64> {
        self.write(|tx| workflow::delete_steps(tx, filter))
    }

    /// Every change makes rows claimable: idle workers are woken. A retry counts the failed
    /// workflow steps among the rows as pending again.
    fn job_update(&self, filter: &JobFilter, change: filter::Change) -> Result<u64> {
        let statement = filter::update(&DIALECT, filter, change);
        if change == filter::Change::RetryNow {
            return self.waking(|tx| workflow::retry_steps(tx, filter, &statement));
        }
        self.waking(|tx| changed(tx, &statement.sql, params(&statement)))
    }

    fn job_stats(&self) -> Result<Vec<QueueStats>> {
        self.run(|conn| {
            let rows: Vec<mysql::Row> = conn.query(sql::STATS.as_str())?;
            rows.into_iter().map(rows::queue_stats).collect()
        })
    }

    fn job_count_by_locker(&self) -> Result<Vec<(Option<String>, i64)>> {
        let statement = filter::lockers(&DIALECT);
        self.run(|conn| conn.query(statement))
    }

    fn worker_register(&self, w: &WorkerInfo<'_>) -> Result<()> {
        let queues = w.queues_column();
        self.run(|conn| {
            conn.exec_drop(
                sql::WORKER_REGISTER,
                (w.name, w.host, w.pid, queues, VERSION),
            )
        })
    }

    fn worker_heartbeat(&self, name: &str, running: i32) -> Result<bool> {
        self.run(|conn| Ok(changed(conn, sql::WORKER_HEARTBEAT, (running, name))? > 0))
    }

    fn worker_remove(&self, name: &str, stale_after: Option<Duration>) -> Result<bool> {
        let secs = stale_after.map(|d| d.as_secs_f64());
        self.run(|conn| Ok(changed(conn, sql::WORKER_REMOVE, (name, secs, secs))? > 0))
    }

    fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        self.run(|conn| {
            let rows: Vec<mysql::Row> = conn.query(sql::WORKER_LIST.as_str())?;
            rows.into_iter().map(rows::worker_row).collect()
        })
    }

    fn job_age(&self, waited: Duration, batch: i64) -> Result<u64> {
        let secs = waited.as_secs_f64();
        self.run(|conn| changed(conn, sql::AGE.as_str(), (secs, secs, batch)))
    }

    fn job_prune_failed(&self, older_than: Duration, limit: i64) -> Result<u64> {
        self.run(|conn| changed(conn, sql::PRUNE_FAILED, (older_than.as_secs_f64(), limit)))
    }

    fn queue_pause(&self, queue: &str, paused: bool) -> Result<bool> {
        if !paused {
            // Idle workers look again at once.
            return Ok(self.waking(|tx| changed(tx, sql::QUEUE_RESUME, (queue,)))? > 0);
        }
        self.run(|conn| Ok(changed(conn, sql::QUEUE_PAUSE, (queue,))? > 0))
    }

    fn queue_paused(&self) -> Result<Vec<String>> {
        self.run(|conn| conn.query(sql::QUEUE_PAUSED))
    }

    fn job_cancel(&self, id: JobId) -> Result<Cancel> {
        self.write(|tx| {
            let row: Option<(bool, bool)> = tx.exec_first(sql::CANCEL_RUNNING, (id,))?;
            Ok(match row {
                None => Cancel::NotFound,
                Some((true, _)) => {
                    tx.exec_drop(sql::CANCEL_REQUEST, (id,))?;
                    Cancel::Requested
                }
                Some((false, step)) => {
                    tx.exec_drop(sql::CANCEL_DEQUEUE, (id,))?;
                    if step {
                        workflow::finish(tx, id, false)?;
                    }
                    Cancel::Dequeued
                }
            })
        })
    }

    fn workflow_insert(&self, workflow: &NewWorkflow) -> Result<WorkflowRun> {
        MysqlStore::workflow_insert(self, workflow)
    }

    fn workflow_get(&self, id: WorkflowId) -> Result<Option<WorkflowInfo>> {
        MysqlStore::workflow_get(self, id)
    }

    fn workflow_cancel(&self, id: WorkflowId) -> Result<(WorkflowCancel, Vec<JobId>)> {
        MysqlStore::workflow_cancel(self, id)
    }

    fn workflow_retry(&self, id: WorkflowId) -> Result<Option<u64>> {
        MysqlStore::workflow_retry(self, id)
    }

    fn workflow_list(&self, limit: i64) -> Result<Vec<WorkflowInfo>> {
        MysqlStore::workflow_list(self, limit)
    }

    fn workflow_counts(&self) -> Result<Vec<(WorkflowState, i64)>> {
        MysqlStore::workflow_counts(self)
    }

    fn workflow_prune(&self, older_than: Duration, limit: i64) -> Result<u64> {
        MysqlStore::workflow_prune(self, older_than, limit)
    }

    fn batch_add(&self, id: WorkflowId, rows: &[NewJob]) -> Result<Vec<JobId>> {
        MysqlStore::batch_add(self, id, rows)
    }

    fn workflow_of(&self, job: JobId) -> Result<Option<WorkflowId>> {
        MysqlStore::workflow_of(self, job)
    }

    fn workflow_dependency(&self, job: JobId, step: &str) -> Result<Option<JobId>> {
        MysqlStore::workflow_dependency(self, job, step)
    }

    fn workflow_step_state(&self, job: JobId) -> Result<Option<StepState>> {
        MysqlStore::workflow_step_state(self, job)
    }

    fn job_cancel_requested(&self, ids: &[JobId]) -> Result<Vec<JobId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.run(|conn| conn.query(sql::cancel_requested(&id_list(ids))))
    }

    fn cancel_prune(&self) -> Result<u64> {
        self.run(|conn| changed(conn, sql::CANCEL_PRUNE, ()))
    }

    fn queue_limit(&self, queue: &str, max_running: Option<i32>) -> Result<bool> {
        self.run(|conn| {
            let n = match max_running {
                Some(max) => changed(conn, sql::QUEUE_LIMIT_SET, (queue, max))?,
                None => changed(conn, sql::QUEUE_LIMIT_REMOVE, (queue,))?,
            };
            Ok(n > 0)
        })
    }

    fn queue_limits(&self) -> Result<Vec<(String, i32)>> {
        self.run(|conn| conn.query(sql::QUEUE_LIMITS))
    }

    fn rate_limit(&self, scope: &RateScope, rate: Option<StoredRate>) -> Result<bool> {
        let (kind, name) = (scope.kind(), scope.name());
        self.run(|conn| {
            let n = match rate {
                Some(r) => changed(
                    conn,
                    sql::RATE_LIMIT_SET,
                    (kind, name, r.max_starts, r.period_ms),
                )?,
                None => changed(conn, sql::RATE_LIMIT_REMOVE, (kind, name))?,
            };
            Ok(n > 0)
        })
    }

    fn rate_limits(&self) -> Result<Vec<RateLimit>> {
        let rows: Vec<(String, String, i32, i32)> =
            self.run(|conn| conn.query(sql::RATE_LIMITS))?;
        Ok((rows.into_iter())
            .map(|(kind, name, starts, period)| rate_limit_of(kind, name, starts, period))
            .collect())
    }

    fn rate_prune(&self) -> Result<u64> {
        self.run(|conn| changed(conn, sql::RATE_PRUNE, ()))
    }

    fn rate_refill(&self) -> Option<Duration> {
        self.refill.take()
    }

    fn throughput_add(&self, succeeded: i64, failed: i64) -> Result<()> {
        self.write(|tx| {
            tx.exec_drop(sql::THROUGHPUT_ADD, (succeeded, failed))?;
            tx.query_drop(sql::THROUGHPUT_TRIM)
        })
    }

    fn throughput(&self, minutes: u32) -> Result<Vec<(SystemTime, i64, i64)>> {
        self.run(|conn| {
            let rows: Vec<mysql::Row> = conn.exec(sql::THROUGHPUT, (minutes,))?;
            rows.into_iter().map(rows::throughput_row).collect()
        })
    }

    fn cron_upsert(&self, s: &ScheduleDef, next: Option<SystemTime>) -> Result<()> {
        let next = next.map(unix_secs);
        let values: Vec<Value> = vec![
            s.name.as_str().into(),
            s.expression.as_str().into(),
            s.tz.as_str().into(),
            s.missed.as_str().into(),
            s.job_name.to_string().into(),
            s.handler.as_str().into(),
            s.queue.as_deref().into(),
            s.priority.into(),
            s.from_code.into(),
            next.into(),
        ];
        self.run(|conn| conn.exec_drop(sql::CRON_UPSERT, values))
    }

    fn cron_remove(&self, name: &str) -> Result<bool> {
        self.run(|conn| Ok(changed(conn, sql::CRON_REMOVE, (name,))? > 0))
    }

    fn cron_list(&self) -> Result<Vec<ScheduleRow>> {
        self.run(|conn| {
            let rows: Vec<mysql::Row> = conn.query(sql::CRON_LIST.as_str())?;
            rows.into_iter().map(rows::schedule_row).collect()
        })
    }

    fn cron_due(&self) -> Result<(SystemTime, Vec<ScheduleRow>)> {
        self.run(|conn| {
            let now: f64 = conn.query_first(sql::NOW_SECS)?.unwrap_or_default();
            let rows: Vec<mysql::Row> = conn.exec(sql::CRON_DUE.as_str(), (now,))?;
            let rows = rows.into_iter().map(rows::schedule_row);
            Ok((time(now), rows.collect::<mysql::Result<_>>()?))
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
            let moved = changed(
                tx,
                sql::CRON_MOVE,
                (
                    next.map(unix_secs),
                    last.map(unix_secs),
                    name,
                    unix_secs(expected),
                ),
            )?;
            if moved == 0 {
                return Ok(false);
            }
            insert::within(tx, jobs)?;
            Ok(true)
        })
    }

    /// MySQL has no LISTEN: an idle worker reads the wake-up number (see `wakeups`).
    fn wait_for_jobs(&self, timeout: Duration, stop: &StopFlag) -> bool {
        self.wait(timeout, stop)
    }

    fn maintenance_claim(&self, task: &str, worker: &str, every: Duration) -> Result<bool> {
        self.run(|conn| {
            let n = changed(
                conn,
                sql::MAINTENANCE_CLAIM,
                (worker, task, every.as_secs_f64()),
            )?;
            Ok(n > 0)
        })
    }
}

impl MysqlStore {
    /// Whether any limited job may be claimable: looked for at most once a second while none
    /// is found (see [`crate::store::LimitedProbe`]).
    fn limited_work(&self) -> Result<bool> {
        self.limited.look(|| {
            let any = self.run(|conn| conn.query_first::<bool, _>(sql::LIMITED_WORK))?;
            Ok(any.unwrap_or(false))
        })
    }

    /// The limited claim (see `sql::claim_limited_pick`): its turn, the worker's liveness,
    /// the choice, the lock, the starts its rates count, and when a rate next frees a start,
    /// in one transaction.
    fn claim_limited(&self, p: &ClaimParams<'_>, min: i32, max: i32) -> Result<Vec<JobRow>> {
        let window = (p.limit as i64 * 4).max(100);
        let cursor = self.keys.cursor();
        let pick = sql::claim_limited_pick(p.queues.len());
        let mut named: Vec<(String, Value)> = vec![
            ("min".into(), min.into()),
            ("max".into(), max.into()),
            ("limit".into(), (p.limit as i64).into()),
            ("window".into(), window.into()),
            ("cursor".into(), cursor.into()),
        ];
        for (i, queue) in p.queues.iter().enumerate() {
            named.push((format!("q{i}"), queue.as_str().into()));
        }
        let params = mysql::Params::from(named);
        let (jobs, refill) = self.write(|tx| {
            tx.query_drop(sql::LIMITED_TURN)?;
            if tx
                .exec_first::<i64, _, _>(sql::WORKER_ALIVE, (p.worker,))?
                .is_none()
            {
                return Ok((Vec::new(), None));
            }
            let ids: Vec<JobId> = tx.exec(&pick, params.clone())?;
            let jobs = lock_rows(tx, p.worker, &ids)?;
            if !jobs.is_empty() {
                let taken: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
                tx.query_drop(sql::rate_record(&id_list(&taken)))?;
            }
            let refill = if jobs.len() < p.limit {
                tx.query_first::<Option<f64>, _>(sql::RATE_REFILL.as_str())?
                    .flatten()
            } else {
                None
            };
            Ok((jobs, refill))
        })?;
        self.refill.set(refill);
        self.keys.claimed(&jobs);
        Ok(jobs)
    }
}

/// Locks the chosen rows `ids` that still wait for `worker` and reads those it now holds.
fn lock_rows(
    tx: &mut mysql::Transaction<'_>,
    worker: &str,
    ids: &[JobId],
) -> mysql::Result<Vec<JobRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = id_list(ids);
    tx.exec_drop(sql::claim_lock(&list), (worker,))?;
    let rows: Vec<mysql::Row> = tx.exec(sql::held_rows(&list), (worker,))?;
    rows.into_iter().map(job_row).collect()
}

/// Records failed attempts in the history, in the transaction that writes their outcomes.
fn record_attempts(
    tx: &mut mysql::Transaction<'_>,
    worker: &str,
    failed: &[FailedAttempt],
) -> mysql::Result<()> {
    for a in failed {
        let ran_for = a.ran_for.map(|d| d.as_secs_f64());
        let values: Vec<Value> = vec![
            a.id.into(),
            a.attempt.into(),
            worker.into(),
            ran_for.into(),
            ran_for.into(),
            a.error.as_str().into(),
            a.id.into(),
            worker.into(),
        ];
        tx.exec_drop(sql::ATTEMPT_RECORD, values)?;
        tx.exec_drop(sql::ATTEMPT_TRIM.as_str(), (a.id, a.attempt))?;
    }
    Ok(())
}
