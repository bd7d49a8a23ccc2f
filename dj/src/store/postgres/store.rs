//! The `Store` impl: each method binds its values and runs a statement of [`super::sql`]
//! through [`PgStore`]'s helpers, or calls the part that does more ([`super::claim`],
//! [`super::schema`], [`super::listen`], [`super::insert`]).

use std::time::{Duration, SystemTime};

use tokio_postgres::types::ToSql;

use super::insert::{InsertPlan, Shape};
use super::pool::{Session, Sql, Tx};
use super::rows::{self, changed, job_row, queue_stats, schedule_row, worker_row};
use super::sql::{self, waking, Stmt, DIALECT};
use super::PgStore;
use crate::error::Result;
use crate::io;
use crate::model::{
    Attempt, Cancel, EnqueueOutcome, JobFilter, JobId, JobResult, JobRow, NewJob, NewWorkflow,
    Progress, QueueStats, RateLimit, RateScope, ScheduleDef, ScheduleRow, StepState, StoredRate,
    WorkerRow, WorkflowCancel, WorkflowId, WorkflowInfo, WorkflowRun, WorkflowState,
};
use crate::stop::StopFlag;
use crate::store::{
    filter, rate_limit_of, stored_result, ClaimParams, CronFire, Fail, FailedAttempt, Finished,
    Lane, LaneClaim, Recorded, Retry, Store, Wakeups, WorkerInfo, VERSION,
};

impl Store for PgStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn migrate(&self) -> Result<Vec<u32>> {
        self.apply_migrations()
    }

    fn check_schema(&self) -> Result<()> {
        self.check_columns()
    }

    fn now(&self) -> Result<SystemTime> {
        Ok(self.query(&sql::NOW, &[])?[0].get(0))
    }

    fn job_insert_many(&self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
        io::block_on(self.insert(rows))
    }

    #[cfg(feature = "tokio")]
    fn as_postgres(&self) -> Option<&PgStore> {
        Some(self)
    }

    fn job_claim(&self, p: &ClaimParams<'_>) -> Result<Vec<JobRow>> {
        self.claim(p)
    }

    fn lane_claim(&self, p: &ClaimParams<'_>) -> Result<Option<LaneClaim>> {
        PgStore::lane_claim(self, p)
    }

    fn lane_finish(
        &self,
        lane: Lane,
        worker: &str,
        finished: Finished<'_>,
        promote: &[JobId],
    ) -> Result<()> {
        PgStore::lane_finish(self, lane, worker, finished, promote)
    }

    fn lane_abandoned(&self, worker: &str, ids: &[JobId], finished: Finished<'_>) -> Result<()> {
        PgStore::lane_abandoned(self, worker, ids, finished)
    }

    fn lane_rescue(&self, worker: Option<&str>) -> Result<u64> {
        PgStore::lane_rescue(self, worker)
    }

    fn reindex(&self) -> Result<Vec<String>> {
        self.reindex_concurrently()
    }

    fn job_complete(&self, worker: &str, ids: &[JobId]) -> Result<()> {
        self.by_worker(sql::COMPLETE, worker, ids).map(drop)
    }

    fn job_complete_recorded(&self, worker: &str, recorded: &[Recorded]) -> Result<()> {
        if recorded.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = recorded.iter().map(|r| r.id).collect();
        let values: Vec<&str> = recorded.iter().map(|r| r.value.as_str()).collect();
        self.execute(&sql::COMPLETE_RECORDED, &[&ids, &worker, &values])
            .map(drop)
    }

    fn result_get(&self, id: JobId) -> Result<Option<JobResult>> {
        let rows = self.query(&sql::RESULT_GET, &[&id])?;
        rows.first()
            .map(|row| stored_result(id, row.get(0), row.get(1), row.get(2)))
            .transpose()
    }

    fn result_prune(&self, older_than: Duration, limit: i64) -> Result<u64> {
        self.execute(&sql::RESULT_PRUNE, &[&older_than.as_secs_f64(), &limit])
    }

    fn progress_write(&self, reports: &[(JobId, f64, String)]) -> Result<()> {
        let ids: Vec<i64> = reports.iter().map(|r| r.0).collect();
        let fractions: Vec<f64> = reports.iter().map(|r| r.1).collect();
        let messages: Vec<&str> = reports.iter().map(|r| r.2.as_str()).collect();
        self.execute(&sql::PROGRESS_WRITE, &[&ids, &fractions, &messages])
            .map(drop)
    }

    fn progress_clear(&self, ids: &[JobId]) -> Result<()> {
        self.execute(&sql::PROGRESS_CLEAR, &[&ids]).map(drop)
    }

    fn progress_of(&self, ids: &[JobId]) -> Result<Vec<(JobId, Progress)>> {
        let rows = self.query(&sql::PROGRESS_OF, &[&ids])?;
        Ok(rows
            .iter()
            .map(|row| {
                let progress = Progress {
                    fraction: row.get(1),
                    message: row.get(2),
                    updated_at: row.get(3),
                };
                (row.get(0), progress)
            })
            .collect())
    }

    fn progress_prune(&self) -> Result<u64> {
        self.execute(&sql::PROGRESS_PRUNE, &[])
    }

    fn attempt_list(&self, id: JobId) -> Result<Vec<Attempt>> {
        let rows = self.query(&sql::ATTEMPT_LIST, &[&id])?;
        Ok(rows
            .iter()
            .map(|row| Attempt {
                attempt: row.get(0),
                worker: row.get(1),
                started_at: row.get(2),
                finished_at: row.get(3),
                error: row.get(4),
            })
            .collect())
    }

    fn attempt_prune(&self, older_than: Duration, limit: i64) -> Result<u64> {
        self.execute(&sql::ATTEMPT_PRUNE, &[&older_than.as_secs_f64(), &limit])
    }

    fn result_wakeups(&self) -> Option<tokio::sync::broadcast::Receiver<JobId>> {
        PgStore::result_wakeups(self)
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
        let snoozed: Vec<bool> = retries.iter().map(|r| r.snoozed).collect();
        let retry = Stmt {
            sql: sql::RETRY,
            types: sql::RETRY_TYPES,
        };
        let params: [&(dyn ToSql + Sync); 7] = [
            &ids, &attempts, &delays, &errors, &release, &worker, &snoozed,
        ];
        let failed = FailedAttempt::of_retries(retries);
        if failed.is_empty() {
            // Snoozes only: nothing for the history, one statement as before it.
            return self.execute(&retry, &params).map(drop);
        }
        self.run(async |conn: &mut Session| {
            let tx = conn.transaction().await?;
            record_attempts(&tx, worker, &failed).await?;
            tx.execute(Sql::Fixed(retry.sql), retry.types, &params)
                .await?;
            tx.commit().await
        })
    }

    fn job_fail(&self, worker: &str, fails: &[Fail]) -> Result<()> {
        let (destroy, keep): (Vec<&Fail>, Vec<&Fail>) = fails.iter().partition(|f| f.destroy);
        let destroy_ids: Vec<i64> = destroy.iter().map(|f| f.id).collect();
        let destroy_errors: Vec<&str> = destroy.iter().map(|f| f.last_error.as_str()).collect();
        let keep_ids: Vec<i64> = keep.iter().map(|f| f.id).collect();
        let attempts: Vec<i32> = keep.iter().map(|f| f.attempts).collect();
        let errors: Vec<&str> = keep.iter().map(|f| f.last_error.as_str()).collect();
        let keep_params: [&(dyn ToSql + Sync); 4] = [&keep_ids, &attempts, &errors, &worker];
        let failed = FailedAttempt::of_fails(fails);
        self.run(async |conn: &mut Session| {
            let tx = conn.transaction().await?;
            record_attempts(&tx, worker, &failed).await?;
            if !destroy_ids.is_empty() {
                let destroy = &sql::FAIL_DESTROY;
                let params: [&(dyn ToSql + Sync); 3] = [&destroy_ids, &worker, &destroy_errors];
                tx.execute(Sql::Fixed(destroy.sql), destroy.types, &params)
                    .await?;
            }
            if !keep_ids.is_empty() {
                let fail = Sql::Fixed(sql::FAIL_KEEP);
                tx.execute(fail, sql::FAIL_KEEP_TYPES, &keep_params).await?;
            }
            tx.commit().await
        })
    }

    fn job_held(&self, worker: &str, ids: &[JobId]) -> Result<Vec<JobId>> {
        let rows = self.query(&sql::HELD, &[&ids, &worker])?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn job_unlock(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.waking_by_worker(sql::UNLOCK, worker, ids)
    }

    fn job_mark_started(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.by_worker(sql::MARK_STARTED, worker, ids)
    }

    fn job_release_orphaned(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.waking_by_worker(sql::RELEASE_ORPHANED, worker, ids)
    }

    fn job_unlock_worker(&self, worker: &str) -> Result<u64> {
        Ok(changed(&self.query(&sql::UNLOCK_WORKER, &[&worker])?))
    }

    fn job_list(&self, filter: &JobFilter) -> Result<Vec<JobRow>> {
        let statement = filter::list(&DIALECT, filter, sql::COLUMNS);
        let rows = self.query_built(&statement.sql, &statement)?;
        Ok(rows.iter().map(job_row).collect())
    }

    fn job_count(&self, filter: &JobFilter) -> Result<i64> {
        let statement = filter::count(&DIALECT, filter);
        Ok(self.query_built(&statement.sql, &statement)?[0].get(0))
    }

    /// The workflow steps among the rows are named first, so that their workflows count
    /// them as cancelled (see [`filter::delete_marks`]).
    fn job_delete(&self, filter: &JobFilter) -> Result<u64> {
        let marks = filter::delete_marks(&DIALECT, filter);
        let statement = filter::delete(&DIALECT, filter);
        self.run(async |conn: &mut Session| {
            let tx = conn.transaction().await?;
            let (types, params) = (rows::types(&marks), rows::params(&marks));
            tx.execute(Sql::Built(&marks.sql), &types, &params).await?;
            let (types, params) = (rows::types(&statement), rows::params(&statement));
            let n = tx.execute(Sql::Built(&statement.sql), &types, &params);
            let n = n.await?;
            tx.execute(Sql::Fixed(filter::DELETE_MARKS_CLEAR), &[], &[])
                .await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Every change makes rows claimable: workers idle on LISTEN are woken.
    fn job_update(&self, filter: &JobFilter, change: filter::Change) -> Result<u64> {
        let statement = filter::update(&DIALECT, filter, change);
        let waking = format!(waking!("{}"), statement.sql);
        Ok(changed(&self.query_built(&waking, &statement)?))
    }

    fn job_stats(&self) -> Result<Vec<QueueStats>> {
        Ok(self
            .query(&sql::STATS, &[])?
            .iter()
            .map(queue_stats)
            .collect())
    }

    fn job_count_by_locker(&self) -> Result<Vec<(Option<String>, i64)>> {
        let sql = filter::lockers(&DIALECT);
        self.run(async |conn: &mut Session| {
            let rows = conn.query(Sql::Built(&sql), &[], &[]).await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn worker_register(&self, w: &WorkerInfo<'_>) -> Result<()> {
        let queues = w.queues_column();
        let params: [&(dyn ToSql + Sync); 5] = [&w.name, &w.host, &w.pid, &queues, &VERSION];
        self.execute(&sql::WORKER_REGISTER, &params).map(drop)
    }

    fn worker_heartbeat(&self, name: &str, running: i32) -> Result<bool> {
        Ok(self.execute(&sql::WORKER_HEARTBEAT, &[&name, &running])? > 0)
    }

    fn worker_remove(&self, name: &str, stale_after: Option<Duration>) -> Result<bool> {
        let secs = stale_after.map(|d| d.as_secs_f64());
        Ok(self.execute(&sql::WORKER_REMOVE, &[&name, &secs])? > 0)
    }

    fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        Ok(self
            .query(&sql::WORKER_LIST, &[])?
            .iter()
            .map(worker_row)
            .collect())
    }

    fn job_prune_failed(&self, older_than: Duration, limit: i64) -> Result<u64> {
        self.execute(&sql::PRUNE, &[&older_than.as_secs_f64(), &limit])
    }

    fn job_age(&self, waited: Duration, batch: i64) -> Result<u64> {
        self.execute(&sql::AGE, &[&waited.as_secs_f64(), &batch])
    }

    fn queue_pause(&self, queue: &str, paused: bool) -> Result<bool> {
        let stmt = if paused {
            &sql::QUEUE_PAUSE
        } else {
            &sql::QUEUE_RESUME
        };
        // Workers idle on LISTEN look again at once when a queue is resumed.
        self.execute_then_notify(stmt, &[&queue], !paused)
    }

    fn queue_paused(&self) -> Result<Vec<String>> {
        let rows = self.query(&sql::QUEUES_PAUSED, &[])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn job_cancel(&self, id: JobId) -> Result<Cancel> {
        // The row is locked first, so a claim (SKIP LOCKED) cannot take it between the look
        // and the change; a claim that has it already is waited for.
        let rows = self.query(&sql::CANCEL_ONE, &[&id])?;
        let (dequeued, requested): (i64, i64) =
            rows.first().map_or((0, 0), |r| (r.get(0), r.get(1)));
        Ok(if dequeued > 0 {
            Cancel::Dequeued
        } else if requested > 0 {
            Cancel::Requested
        } else {
            Cancel::NotFound
        })
    }

    fn workflow_insert(&self, workflow: &NewWorkflow) -> Result<WorkflowRun> {
        PgStore::workflow_insert(self, workflow)
    }

    fn workflow_get(&self, id: WorkflowId) -> Result<Option<WorkflowInfo>> {
        PgStore::workflow_get(self, id)
    }

    fn workflow_cancel(&self, id: WorkflowId) -> Result<(WorkflowCancel, Vec<JobId>)> {
        PgStore::workflow_cancel(self, id)
    }

    fn workflow_retry(&self, id: WorkflowId) -> Result<Option<u64>> {
        PgStore::workflow_retry(self, id)
    }

    fn workflow_list(&self, limit: i64) -> Result<Vec<WorkflowInfo>> {
        PgStore::workflow_list(self, limit)
    }

    fn workflow_counts(&self) -> Result<Vec<(WorkflowState, i64)>> {
        PgStore::workflow_counts(self)
    }

    fn workflow_prune(&self, older_than: Duration, limit: i64) -> Result<u64> {
        PgStore::workflow_prune(self, older_than, limit)
    }

    fn batch_add(&self, id: WorkflowId, rows: &[NewJob]) -> Result<Vec<JobId>> {
        PgStore::batch_add(self, id, rows)
    }

    fn workflow_of(&self, job: JobId) -> Result<Option<WorkflowId>> {
        PgStore::workflow_of(self, job)
    }

    fn workflow_dependency(&self, job: JobId, step: &str) -> Result<Option<JobId>> {
        PgStore::workflow_dependency(self, job, step)
    }

    fn workflow_step_state(&self, job: JobId) -> Result<Option<StepState>> {
        PgStore::workflow_step_state(self, job)
    }

    fn job_cancel_requested(&self, ids: &[JobId]) -> Result<Vec<JobId>> {
        let rows = self.query(&sql::CANCEL_REQUESTED, &[&ids])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn cancel_prune(&self) -> Result<u64> {
        self.execute(&sql::CANCELS_PRUNE, &[])
    }

    fn queue_limit(&self, queue: &str, max_running: Option<i32>) -> Result<bool> {
        // A raised or removed limit may let idle workers start jobs.
        match max_running {
            Some(max) => self.execute_then_notify(&sql::QUEUE_LIMIT_SET, &[&queue, &max], true),
            None => self.execute_then_notify(&sql::QUEUE_LIMIT_REMOVE, &[&queue], true),
        }
    }

    fn queue_limits(&self) -> Result<Vec<(String, i32)>> {
        let rows = self.query(&sql::QUEUE_LIMITS, &[])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn rate_limit(&self, scope: &RateScope, rate: Option<StoredRate>) -> Result<bool> {
        let (kind, name) = (scope.kind(), scope.name());
        // A raised or removed rate may let idle workers start jobs.
        match rate {
            Some(r) => self.execute_then_notify(
                &sql::RATE_LIMIT_SET,
                &[&kind, &name, &r.max_starts, &r.period_ms],
                true,
            ),
            None => self.execute_then_notify(&sql::RATE_LIMIT_REMOVE, &[&kind, &name], true),
        }
    }

    fn rate_limits(&self) -> Result<Vec<RateLimit>> {
        let rows = self.query(&sql::RATE_LIMITS, &[])?;
        Ok(rows
            .iter()
            .map(|r| rate_limit_of(r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    fn rate_prune(&self) -> Result<u64> {
        self.execute(&sql::RATE_PRUNE, &[])
    }

    fn rate_refill(&self) -> Option<Duration> {
        self.refill.take()
    }

    fn throughput_add(&self, succeeded: i64, failed: i64) -> Result<()> {
        self.run(async |conn: &mut Session| {
            let add = &sql::THROUGHPUT_ADD;
            let params: [&(dyn ToSql + Sync); 2] = [&succeeded, &failed];
            conn.execute(Sql::Fixed(add.sql), add.types, &params)
                .await?;
            let trim = Sql::Fixed(sql::THROUGHPUT_TRIM.sql);
            conn.execute(trim, &[], &[]).await?;
            Ok(())
        })
    }

    fn throughput(&self, minutes: u32) -> Result<Vec<(SystemTime, i64, i64)>> {
        let rows = self.query(&sql::THROUGHPUT, &[&f64::from(minutes)])?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn cron_upsert(&self, s: &ScheduleDef, next: Option<SystemTime>) -> Result<()> {
        let params: [&(dyn ToSql + Sync); 10] = [
            &s.name,
            &s.expression,
            &s.tz,
            &s.missed.as_str(),
            &s.job_name,
            &s.handler,
            &s.queue,
            &s.priority,
            &s.from_code,
            &next,
        ];
        self.execute(&sql::CRON_UPSERT, &params).map(drop)
    }

    fn cron_remove(&self, name: &str) -> Result<bool> {
        Ok(self.execute(&sql::CRON_REMOVE, &[&name])? > 0)
    }

    fn cron_list(&self) -> Result<Vec<ScheduleRow>> {
        let rows = self.query(&sql::CRON_LIST, &[])?;
        Ok(rows.iter().map(schedule_row).collect())
    }

    fn cron_due(&self) -> Result<(SystemTime, Vec<ScheduleRow>)> {
        self.run(async |conn: &mut Session| {
            let rows = conn.query(Sql::Fixed(sql::CRON_DUE), &[], &[]).await?;
            let now = conn.query(Sql::Fixed(sql::NOW.sql), &[], &[]).await?[0].get(0);
            Ok((now, rows.iter().map(schedule_row).collect()))
        })
    }

    fn cron_fire(&self, fire: &CronFire<'_>) -> Result<bool> {
        self.fire(fire)
    }

    fn maintenance_claim(&self, task: &str, worker: &str, every: Duration) -> Result<bool> {
        let params: [&(dyn ToSql + Sync); 3] = [&task, &worker, &every.as_secs_f64()];
        Ok(self.execute(&sql::MAINTENANCE_CLAIM, &params)? > 0)
    }

    fn wakeups(&self) -> Option<Wakeups> {
        self.wakeups_configured()
    }

    fn wait_for_jobs(&self, timeout: Duration, stop: &StopFlag) -> bool {
        self.wait_for_wakeup(timeout, stop)
    }
}

impl PgStore {
    /// One of the statements that change the rows a worker holds, by id.
    fn by_worker(&self, sql: &'static str, worker: &str, ids: &[JobId]) -> Result<u64> {
        let stmt = Stmt {
            sql,
            types: sql::BY_WORKER,
        };
        self.execute(&stmt, &[&ids, &worker])
    }

    /// [`PgStore::by_worker`] for a [`waking!`] statement.
    fn waking_by_worker(&self, sql: &'static str, worker: &str, ids: &[JobId]) -> Result<u64> {
        let stmt = Stmt {
            sql,
            types: sql::BY_WORKER,
        };
        Ok(changed(&self.query(&stmt, &[&ids, &worker])?))
    }

    /// A filtered statement (`sql`: its text, or the text wrapped), prepared for this call.
    fn query_built(
        &self,
        sql: &str,
        statement: &filter::Statement,
    ) -> Result<Vec<tokio_postgres::Row>> {
        self.run(async |conn: &mut Session| {
            let (types, params) = (rows::types(statement), rows::params(statement));
            conn.query(Sql::Built(sql), &types, &params).await
        })
    }

    /// Runs `stmt`; if it changed a row and `notify`, wakes idle workers. Whether it did.
    fn execute_then_notify(
        &self,
        stmt: &Stmt,
        params: &[&(dyn ToSql + Sync)],
        notify: bool,
    ) -> Result<bool> {
        self.run(async |conn: &mut Session| {
            let n = conn
                .execute(Sql::Fixed(stmt.sql), stmt.types, params)
                .await?;
            if n > 0 && notify {
                conn.batch_execute(&format!("NOTIFY {}", sql::CHANNEL))
                    .await?;
            }
            Ok(n > 0)
        })
    }

    /// [`Store::cron_fire`]: the compare-and-set, then the jobs, in one transaction.
    fn fire(&self, fire: &CronFire<'_>) -> Result<bool> {
        let CronFire {
            name,
            expected,
            next,
            last,
            jobs,
        } = *fire;
        self.run(async |conn: &mut Session| {
            let tx = conn.transaction().await?;
            let moved = Sql::Unnamed(sql::CRON_MOVE.sql);
            let params: [&(dyn ToSql + Sync); 4] = [&name, &expected, &next, &last];
            if tx.execute(moved, sql::CRON_MOVE.types, &params).await? == 0 {
                return Ok(false);
            }
            let mut tx = tx;
            InsertPlan::new(jobs, Shape::BATCHED)
                .run_steps(&mut tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}

/// Records failed attempts in the history, in the transaction that writes their outcomes.
async fn record_attempts(
    tx: &Tx<'_>,
    worker: &str,
    failed: &[FailedAttempt],
) -> Result<(), tokio_postgres::Error> {
    if failed.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = failed.iter().map(|a| a.id).collect();
    let numbers: Vec<i32> = failed.iter().map(|a| a.attempt).collect();
    let errors: Vec<&str> = failed.iter().map(|a| a.error.as_str()).collect();
    let ran_for: Vec<Option<f64>> = (failed.iter())
        .map(|a| a.ran_for.map(|d| d.as_secs_f64()))
        .collect();
    let params: [&(dyn ToSql + Sync); 5] = [&ids, &numbers, &errors, &ran_for, &worker];
    let record = Sql::Fixed(sql::ATTEMPT_RECORD.as_str());
    tx.execute(record, sql::ATTEMPT_RECORD_TYPES, &params)
        .await
        .map(drop)
}
