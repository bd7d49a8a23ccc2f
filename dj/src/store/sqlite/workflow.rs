//! Workflows on SQLite: the insert of a whole workflow in one write transaction, and reading
//! and cancelling one. What happens as steps finish is the schema's (migration 0020's
//! triggers), whoever finishes them.

use rusqlite::{params, OptionalExtension};

use super::insert;
use super::rows::{ids_json, params, time};
use super::sql::DIALECT;
use super::SqliteStore;
use crate::error::Result;
use crate::model::{
    JobId, NewJob, NewWorkflow, StepInfo, StepRuns, StepState, WorkflowCancel, WorkflowId,
    WorkflowInfo, WorkflowRun, WorkflowState,
};
use crate::store::batch_closed;
use crate::store::workflow::{
    attach_edges, retry_failed, COUNTS, DEPENDENCY, EDGES_GET, STEPS_GET, STEP_STATE,
    WORKFLOW_INSERT, WORKFLOW_OF,
};

/// The steps that wait move to the held rows before any of them names its workflow (so the
/// delete trigger skips them).
const HOLD_COPY: &str = "INSERT INTO dj_held_jobs SELECT * FROM delayed_jobs \
     WHERE id IN (SELECT value FROM json_each(?1))";
const HOLD_DELETE: &str = "DELETE FROM delayed_jobs WHERE id IN (SELECT value FROM json_each(?1))";
const NAME_READY: &str =
    "UPDATE delayed_jobs SET workflow_id = ?1 WHERE id IN (SELECT value FROM json_each(?2))";
const NAME_HELD: &str =
    "UPDATE dj_held_jobs SET workflow_id = ?1 WHERE id IN (SELECT value FROM json_each(?2))";

const STEP_INSERT: &str = "INSERT INTO dj_workflow_steps \
     (workflow_id, job_id, step, state, waiting_on, runs) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const EDGE_INSERT: &str = "INSERT INTO dj_workflow_edges (depends_on, job_id) VALUES (?1, ?2)";

const WORKFLOW_GET: &str = "SELECT name, state, pending, failed, \
         unixepoch(created_at, 'subsec'), unixepoch(finished_at, 'subsec'), kind \
     FROM dj_workflows WHERE id = ?1";

const STATE_GET: &str = "SELECT state FROM dj_workflows WHERE id = ?1";

/// Cancels the workflow's waiting steps and marks it cancelled (see the PostgreSQL text).
const CANCEL_MARK: &str = "UPDATE dj_workflows SET state = 'cancelled', \
         pending = pending - (SELECT count(*) FROM dj_workflow_steps \
                              WHERE workflow_id = ?1 AND state = 'waiting'), \
         failed = failed + (SELECT count(*) FROM dj_workflow_steps \
                            WHERE workflow_id = ?1 AND state = 'waiting'), \
         finished_at = CASE WHEN pending = (SELECT count(*) FROM dj_workflow_steps \
                                            WHERE workflow_id = ?1 AND state = 'waiting') \
                       THEN strftime('%Y-%m-%d %H:%M:%f', 'now') END \
     WHERE id = ?1";
const CANCEL_WAITING: &str = "UPDATE dj_workflow_steps SET state = 'cancelled', \
         finished_at = strftime('%Y-%m-%d %H:%M:%f', 'now') \
     WHERE workflow_id = ?1 AND state = 'waiting'";
const READY_STEPS: &str =
    "SELECT job_id FROM dj_workflow_steps WHERE workflow_id = ?1 AND state = 'ready'";

/// The workflow's cancelled steps still held, which a retry puts back (see the PostgreSQL
/// text).
const RETRY_HELD: &str = "SELECT count(*) FROM dj_workflow_steps s \
     WHERE s.workflow_id = ?1 AND s.state = 'cancelled' \
       AND EXISTS (SELECT 1 FROM dj_held_jobs h WHERE h.id = s.job_id)";
const RETRY_COUNT: &str = "UPDATE dj_workflows SET state = 'running', finished_at = NULL, \
         pending = pending + ?2, failed = failed - ?2 \
     WHERE id = ?1";
/// Those left waiting on nothing are released by the `dj_workflow_release` trigger.
const RETRY_RESTORE: &str = "UPDATE dj_workflow_steps SET state = 'waiting', \
         cancelled_by = NULL, finished_at = NULL, failed_deps = 0, \
         waiting_on = (SELECT count(*) FROM dj_workflow_edges e \
                       JOIN dj_workflow_steps d ON d.job_id = e.depends_on \
                       WHERE e.job_id = dj_workflow_steps.job_id AND d.state <> 'succeeded') \
     WHERE workflow_id = ?1 AND state = 'cancelled' \
       AND EXISTS (SELECT 1 FROM dj_held_jobs h WHERE h.id = dj_workflow_steps.job_id)";

const LIST: &str = "SELECT id, name, state, pending, failed, \
         unixepoch(created_at, 'subsec'), unixepoch(finished_at, 'subsec'), kind \
     FROM dj_workflows ORDER BY id DESC LIMIT ?1";

/// The workflows a prune removes: up to `?2` finished more than `?1` seconds ago.
macro_rules! pruned {
    () => {
        "SELECT id FROM dj_workflows \
         WHERE finished_at < strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', ?1)) \
         ORDER BY finished_at LIMIT ?2"
    };
}
/// Their steps, links and held rows go first, then the workflows (the same ones: nothing
/// else writes between, in the one write transaction).
const PRUNE: [&str; 4] = [
    concat!(
        "DELETE FROM dj_workflow_edges WHERE job_id IN (SELECT job_id FROM dj_workflow_steps \
         WHERE workflow_id IN (",
        pruned!(),
        "))"
    ),
    concat!(
        "DELETE FROM dj_held_jobs WHERE id IN (SELECT job_id FROM dj_workflow_steps \
         WHERE workflow_id IN (",
        pruned!(),
        "))"
    ),
    concat!(
        "DELETE FROM dj_workflow_steps WHERE workflow_id IN (",
        pruned!(),
        ")"
    ),
    concat!("DELETE FROM dj_workflows WHERE id IN (", pruned!(), ")"),
];

const BATCH_GET: &str = "SELECT kind, state, steps FROM dj_workflows WHERE id = ?1";
const BATCH_CALLBACKS_GONE: &str = "SELECT count(*) FILTER (WHERE state <> 'waiting'), count(*) \
     FROM dj_workflow_steps WHERE workflow_id = ?1 \
       AND step IN ('on_success', 'on_complete', 'on_discard')";
const BATCH_STEP: &str = "INSERT INTO dj_workflow_steps (workflow_id, job_id, step, state) \
     VALUES (?1, ?2, ?3, 'ready')";
const BATCH_EDGES: &str = "INSERT INTO dj_workflow_edges (depends_on, job_id) \
     SELECT ?2, job_id FROM dj_workflow_steps WHERE workflow_id = ?1 \
       AND step IN ('on_success', 'on_complete', 'on_discard')";
const BATCH_CALLBACKS_WAIT: &str = "UPDATE dj_workflow_steps SET waiting_on = waiting_on + ?2 \
     WHERE workflow_id = ?1 AND step IN ('on_success', 'on_complete', 'on_discard')";
const BATCH_GROW: &str =
    "UPDATE dj_workflows SET steps = steps + ?2, pending = pending + ?2 WHERE id = ?1";

impl SqliteStore {
    pub(super) fn workflow_insert(&self, workflow: &NewWorkflow) -> Result<WorkflowRun> {
        let rows: Vec<_> = workflow.steps.iter().map(|s| s.row.clone()).collect();
        let total = workflow.steps.len() as i64;
        self.write(|tx| {
            let id: WorkflowId = tx.query_row(
                WORKFLOW_INSERT,
                params![workflow.name, workflow.kind(), total],
                |r| r.get(0),
            )?;
            let ids: Vec<JobId> = (insert::rusqlite(tx, &rows)?.into_iter())
                .map(|outcome| outcome.id())
                .collect();
            let (ready, held) = workflow.ready_and_held(&ids);
            let mut step_insert = tx.prepare_cached(STEP_INSERT)?;
            for (step, &job) in workflow.steps.iter().zip(&ids) {
                let state = NewWorkflow::initial_state(step);
                let waiting = step.after.len() as i64;
                let runs = step.runs.as_str();
                let values = params![id, job, step.name, state.as_str(), waiting, runs];
                step_insert.execute(values)?;
            }
            let held = ids_json(&held);
            tx.execute(HOLD_COPY, [&held])?;
            tx.execute(HOLD_DELETE, [&held])?;
            tx.execute(NAME_READY, params![id, ids_json(&ready)])?;
            tx.execute(NAME_HELD, params![id, held])?;
            let mut edge_insert = tx.prepare_cached(EDGE_INSERT)?;
            for (dep, step) in workflow.edges() {
                edge_insert.execute([ids[dep], ids[step]])?;
            }
            Ok(workflow.run(id, &ids))
        })
    }

    pub(super) fn workflow_get(&self, id: WorkflowId) -> Result<Option<WorkflowInfo>> {
        self.run(|conn| {
            let tx = conn.transaction()?;
            let head = tx
                .query_row(WORKFLOW_GET, [id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i32>(2)?,
                        r.get::<_, i32>(3)?,
                        r.get::<_, Option<f64>>(4)?,
                        r.get::<_, Option<f64>>(5)?,
                        r.get::<_, String>(6)? == "batch",
                    ))
                })
                .optional()?;
            let Some((name, state, pending, failed, created, finished, batch)) = head else {
                return Ok(None);
            };
            let mut steps: Vec<StepInfo> = tx
                .prepare(STEPS_GET)?
                .query_map([id], |r| {
                    Ok(StepInfo {
                        name: r.get(0)?,
                        job_id: r.get(1)?,
                        state: StepState::parse(&r.get::<_, String>(2)?),
                        after: Vec::new(),
                        waiting_on: r.get(3)?,
                        runs: StepRuns::parse(&r.get::<_, String>(4)?),
                        cancelled_by: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let edges: Vec<(JobId, String)> = tx
                .prepare(EDGES_GET)?
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            attach_edges(&mut steps, edges);
            Ok(Some(WorkflowInfo {
                id,
                name,
                state: WorkflowState::parse(&state),
                pending,
                failed,
                created_at: created.map_or(std::time::UNIX_EPOCH, time),
                finished_at: finished.map(time),
                batch,
                steps,
            }))
        })
    }

    /// Cancels the workflow's waiting steps; the ready ones it returns are the caller's to
    /// cancel.
    pub(super) fn workflow_cancel(&self, id: WorkflowId) -> Result<(WorkflowCancel, Vec<JobId>)> {
        self.write(|tx| {
            let state: Option<String> = tx.query_row(STATE_GET, [id], |r| r.get(0)).optional()?;
            match state.as_deref() {
                None => return Ok((WorkflowCancel::NotFound, Vec::new())),
                Some("running") => {}
                Some(_) => return Ok((WorkflowCancel::Finished, Vec::new())),
            }
            tx.execute(CANCEL_MARK, [id])?;
            tx.execute(CANCEL_WAITING, [id])?;
            let ready = tx
                .prepare(READY_STEPS)?
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok((WorkflowCancel::Cancelled, ready))
        })
    }

    /// Retries the workflow's failed steps and puts back the ones cancelled and still held,
    /// in one transaction; `None` if there is no such workflow.
    pub(super) fn workflow_retry(&self, id: WorkflowId) -> Result<Option<u64>> {
        let retry = retry_failed(&DIALECT, id);
        let mut found = true;
        let changed = self.waking(|tx| {
            let state: Option<String> = tx.query_row(STATE_GET, [id], |r| r.get(0)).optional()?;
            if state.is_none() {
                found = false;
                return Ok(0);
            }
            let restored: i64 = tx.query_row(RETRY_HELD, [id], |r| r.get(0))?;
            tx.execute(RETRY_COUNT, params![id, restored])?;
            // Put back before the failed rows are retried, so that each counts them as
            // dependencies still to finish.
            tx.execute(RETRY_RESTORE, [id])?;
            let retried = tx.execute(&retry.sql, params(&retry))?;
            Ok(restored as usize + retried)
        })?;
        Ok(found.then_some(changed))
    }

    pub(super) fn workflow_list(&self, limit: i64) -> Result<Vec<WorkflowInfo>> {
        self.run(|conn| {
            conn.prepare_cached(LIST)?
                .query_map([limit], |r| {
                    Ok(WorkflowInfo {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        state: WorkflowState::parse(&r.get::<_, String>(2)?),
                        pending: r.get(3)?,
                        failed: r.get(4)?,
                        created_at: r
                            .get::<_, Option<f64>>(5)?
                            .map_or(std::time::UNIX_EPOCH, time),
                        finished_at: r.get::<_, Option<f64>>(6)?.map(time),
                        batch: r.get::<_, String>(7)? == "batch",
                        steps: Vec::new(),
                    })
                })?
                .collect()
        })
    }

    pub(super) fn workflow_counts(&self) -> Result<Vec<(WorkflowState, i64)>> {
        self.run(|conn| {
            conn.prepare_cached(COUNTS)?
                .query_map([], |r| {
                    Ok((WorkflowState::parse(&r.get::<_, String>(0)?), r.get(1)?))
                })?
                .collect()
        })
    }

    pub(super) fn workflow_prune(
        &self,
        older_than: std::time::Duration,
        limit: i64,
    ) -> Result<u64> {
        let secs = older_than.as_secs_f64();
        self.write(|tx| {
            let mut gone = 0;
            for statement in PRUNE {
                gone = tx.execute(statement, params![secs, limit])?;
            }
            Ok(gone as u64)
        })
    }

    /// Adds `rows` to open batch `id` in one write transaction: the callbacks wait for them
    /// as well.
    pub(super) fn batch_add(&self, id: WorkflowId, rows: &[NewJob]) -> Result<Vec<JobId>> {
        let added = self.write(|tx| {
            let head = tx
                .query_row(BATCH_GET, [id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .optional()?;
            let Some((kind, state, steps)) = head else {
                return Ok(Err(format!("no batch {id}")));
            };
            let (fired, callbacks): (i64, i64) =
                tx.query_row(BATCH_CALLBACKS_GONE, [id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let members = (steps - callbacks) as usize;
            if let Some(why) = batch_closed(id, &kind, &state, fired) {
                return Ok(Err(why));
            }
            let ids: Vec<JobId> = (insert::rusqlite(tx, rows)?.into_iter())
                .map(|outcome| outcome.id())
                .collect();
            tx.execute(NAME_READY, params![id, ids_json(&ids)])?;
            let mut step = tx.prepare_cached(BATCH_STEP)?;
            let mut edges = tx.prepare_cached(BATCH_EDGES)?;
            for (i, &job) in ids.iter().enumerate() {
                step.execute(params![id, job, format!("job-{}", members + i + 1)])?;
                edges.execute(params![id, job])?;
            }
            let n = ids.len() as i64;
            tx.execute(BATCH_CALLBACKS_WAIT, params![id, n])?;
            tx.execute(BATCH_GROW, params![id, n])?;
            Ok(Ok(ids))
        })?;
        added.map_err(crate::Error::Invalid)
    }

    pub(super) fn workflow_dependency(&self, job: JobId, step: &str) -> Result<Option<JobId>> {
        self.run(|conn| {
            conn.query_row(DEPENDENCY, params![job, step], |r| r.get(0))
                .optional()
        })
    }

    pub(super) fn workflow_of(&self, job: JobId) -> Result<Option<WorkflowId>> {
        self.run(|conn| conn.query_row(WORKFLOW_OF, [job], |r| r.get(0)).optional())
    }

    pub(super) fn workflow_step_state(&self, job: JobId) -> Result<Option<StepState>> {
        self.run(|conn| {
            let state: Option<String> =
                conn.query_row(STEP_STATE, [job], |r| r.get(0)).optional()?;
            Ok(state.as_deref().map(StepState::parse))
        })
    }
}
