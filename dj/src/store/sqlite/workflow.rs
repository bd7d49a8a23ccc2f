//! Workflows on SQLite: the insert of a whole workflow in one write transaction, and reading
//! and cancelling one. What happens as steps finish is the schema's (migration 0020's
//! triggers), whoever finishes them.

use rusqlite::{params, OptionalExtension};

use super::insert;
use super::rows::{ids_json, time};
use super::SqliteStore;
use crate::error::Result;
use crate::model::{
    JobId, NewWorkflow, StepInfo, StepState, WorkflowCancel, WorkflowId, WorkflowInfo, WorkflowRun,
    WorkflowState,
};

const WORKFLOW_INSERT: &str =
    "INSERT INTO dj_workflows (name, steps, pending) VALUES (?1, ?2, ?2) RETURNING id";

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
     (workflow_id, job_id, step, state, waiting_on, run_anyway) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const EDGE_INSERT: &str = "INSERT INTO dj_workflow_edges (depends_on, job_id) VALUES (?1, ?2)";

const WORKFLOW_GET: &str = "SELECT name, state, pending, failed, \
         unixepoch(created_at, 'subsec'), unixepoch(finished_at, 'subsec') \
     FROM dj_workflows WHERE id = ?1";

const STEPS_GET: &str = "SELECT s.step, s.job_id, s.state, s.waiting_on, s.run_anyway, c.step \
     FROM dj_workflow_steps s LEFT JOIN dj_workflow_steps c ON c.job_id = s.cancelled_by \
     WHERE s.workflow_id = ?1 ORDER BY s.job_id";

const EDGES_GET: &str = "SELECT e.job_id, d.step FROM dj_workflow_edges e \
     JOIN dj_workflow_steps d ON d.job_id = e.depends_on \
     WHERE d.workflow_id = ?1 ORDER BY e.job_id, e.depends_on";

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

const DEPENDENCY: &str = "SELECT d.job_id FROM dj_workflow_steps me \
     JOIN dj_workflow_steps d ON d.workflow_id = me.workflow_id AND d.step = ?2 \
     WHERE me.job_id = ?1";

const STEP_STATE: &str = "SELECT state FROM dj_workflow_steps WHERE job_id = ?1";

impl SqliteStore {
    pub(super) fn workflow_insert(&self, workflow: &NewWorkflow) -> Result<WorkflowRun> {
        let rows: Vec<_> = workflow.steps.iter().map(|s| s.row.clone()).collect();
        let total = workflow.steps.len() as i64;
        self.write(|tx| {
            let id: WorkflowId =
                tx.query_row(WORKFLOW_INSERT, params![workflow.name, total], |r| r.get(0))?;
            let ids: Vec<JobId> = (insert::rusqlite(tx, &rows)?.into_iter())
                .map(|outcome| outcome.id())
                .collect();
            let (mut ready, mut held) = (Vec::new(), Vec::new());
            let mut step_insert = tx.prepare_cached(STEP_INSERT)?;
            for (step, &job) in workflow.steps.iter().zip(&ids) {
                let state = NewWorkflow::initial_state(step);
                match state {
                    StepState::Ready => ready.push(job),
                    _ => held.push(job),
                }
                let waiting = step.after.len() as i64;
                let values = params![id, job, step.name, state.as_str(), waiting, step.run_anyway];
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
            let steps = (workflow.steps.iter().zip(&ids))
                .map(|(step, &job)| (step.name.clone(), job))
                .collect();
            Ok(WorkflowRun { id, steps })
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
                    ))
                })
                .optional()?;
            let Some((name, state, pending, failed, created, finished)) = head else {
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
                        run_anyway: r.get(4)?,
                        cancelled_by: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let edges: Vec<(JobId, String)> = tx
                .prepare(EDGES_GET)?
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (job, dep) in edges {
                if let Some(step) = steps.iter_mut().find(|s| s.job_id == job) {
                    step.after.push(dep);
                }
            }
            Ok(Some(WorkflowInfo {
                id,
                name,
                state: WorkflowState::parse(&state),
                pending,
                failed,
                created_at: created.map_or(std::time::UNIX_EPOCH, time),
                finished_at: finished.map(time),
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

    pub(super) fn workflow_dependency(&self, job: JobId, step: &str) -> Result<Option<JobId>> {
        self.run(|conn| {
            conn.query_row(DEPENDENCY, params![job, step], |r| r.get(0))
                .optional()
        })
    }

    pub(super) fn workflow_step_state(&self, job: JobId) -> Result<Option<StepState>> {
        self.run(|conn| {
            let state: Option<String> =
                conn.query_row(STEP_STATE, [job], |r| r.get(0)).optional()?;
            Ok(state.as_deref().map(StepState::parse))
        })
    }
}
