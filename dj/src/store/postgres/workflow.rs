//! Workflows on PostgreSQL: the insert of a whole workflow in one transaction, and reading
//! and cancelling one. What happens as steps finish is the schema's (migration 0020's
//! triggers), whoever finishes them.

use tokio_postgres::types::{ToSql, Type};

use super::insert::{self, Shape};
use super::pool::{Session, Sql};
use super::PgStore;
use crate::error::Result;
use crate::model::{
    JobId, NewWorkflow, StepInfo, StepState, WorkflowCancel, WorkflowId, WorkflowInfo, WorkflowRun,
    WorkflowState,
};

const WORKFLOW_INSERT: &str =
    "INSERT INTO dj_workflows (name, steps, pending) VALUES ($1, $2, $2) RETURNING id";

/// The steps that wait move from delayed_jobs, where the one insert algorithm put them, to
/// the held rows, before any of them names its workflow (so the delete trigger skips them).
const HOLD: &str = "WITH moved AS (DELETE FROM delayed_jobs WHERE id = ANY($1) RETURNING *) \
     INSERT INTO dj_held_jobs SELECT * FROM moved";
const NAME_READY: &str = "UPDATE delayed_jobs SET workflow_id = $1 WHERE id = ANY($2)";
const NAME_HELD: &str = "UPDATE dj_held_jobs SET workflow_id = $1 WHERE id = ANY($2)";

const STEPS_INSERT: &str = "INSERT INTO dj_workflow_steps \
         (workflow_id, job_id, step, state, waiting_on, run_anyway) \
     SELECT $1, * FROM unnest($2::int8[], $3::text[], $4::text[], $5::int4[], $6::bool[])";

const EDGES_INSERT: &str = "INSERT INTO dj_workflow_edges (depends_on, job_id) \
     SELECT * FROM unnest($1::int8[], $2::int8[])";

const WORKFLOW_GET: &str = "SELECT name, state, pending, failed, created_at, finished_at \
     FROM dj_workflows WHERE id = $1";

const STEPS_GET: &str = "SELECT s.step, s.job_id, s.state, s.waiting_on, s.run_anyway, c.step \
     FROM dj_workflow_steps s LEFT JOIN dj_workflow_steps c ON c.job_id = s.cancelled_by \
     WHERE s.workflow_id = $1 ORDER BY s.job_id";

const EDGES_GET: &str = "SELECT e.job_id, d.step FROM dj_workflow_edges e \
     JOIN dj_workflow_steps d ON d.job_id = e.depends_on \
     WHERE d.workflow_id = $1 ORDER BY e.job_id, e.depends_on";

/// Locks the workflow's row, as every step's finish does, so that no step finishes while
/// the cancel looks at them.
const CANCEL_LOCK: &str = "SELECT state FROM dj_workflows WHERE id = $1 FOR UPDATE";

/// Cancels its waiting steps and marks it cancelled; returns its ready steps, which the
/// caller then cancels one by one (dequeued, or asked to stop if running).
const CANCEL_WAITING: &str = "WITH waiting AS ( \
         UPDATE dj_workflow_steps SET state = 'cancelled', finished_at = now() \
         WHERE workflow_id = $1 AND state = 'waiting' RETURNING job_id), \
     marked AS ( \
         UPDATE dj_workflows SET state = 'cancelled', \
             pending = pending - (SELECT count(*) FROM waiting), \
             failed = failed + (SELECT count(*) FROM waiting), \
             finished_at = CASE WHEN pending = (SELECT count(*) FROM waiting) THEN now() END \
         WHERE id = $1 RETURNING id) \
     SELECT job_id FROM dj_workflow_steps \
     WHERE workflow_id = (SELECT id FROM marked) AND state = 'ready'";

const DEPENDENCY: &str = "SELECT d.job_id FROM dj_workflow_steps me \
     JOIN dj_workflow_steps d ON d.workflow_id = me.workflow_id AND d.step = $2 \
     WHERE me.job_id = $1";

const STEP_STATE: &str = "SELECT state FROM dj_workflow_steps WHERE job_id = $1";

impl PgStore {
    pub(super) fn workflow_insert(&self, workflow: &NewWorkflow) -> Result<WorkflowRun> {
        let rows: Vec<_> = workflow.steps.iter().map(|s| s.row.clone()).collect();
        let total = workflow.steps.len() as i32;
        self.run(async |conn: &mut Session| {
            let mut tx = conn.transaction().await?;
            let id: WorkflowId = tx
                .query(
                    Sql::Unnamed(WORKFLOW_INSERT),
                    &[Type::TEXT, Type::INT4],
                    &[&workflow.name, &total],
                )
                .await?[0]
                .get(0);
            let ids: Vec<JobId> = insert::insert_within(&mut tx, &rows, Shape::BATCHED)
                .await?
                .into_iter()
                .map(|outcome| outcome.id())
                .collect();
            let (mut ready, mut held) = (Vec::new(), Vec::new());
            let (mut names, mut states, mut waiting, mut anyway) = (vec![], vec![], vec![], vec![]);
            for (step, &job) in workflow.steps.iter().zip(&ids) {
                let state = NewWorkflow::initial_state(step);
                match state {
                    StepState::Ready => ready.push(job),
                    _ => held.push(job),
                }
                names.push(step.name.as_str());
                states.push(state.as_str());
                waiting.push(step.after.len() as i32);
                anyway.push(step.run_anyway);
            }
            let (deps, dependants): (Vec<JobId>, Vec<JobId>) =
                workflow.edges().map(|(d, s)| (ids[d], ids[s])).unzip();
            let ids_type = [Type::INT8_ARRAY];
            tx.execute(Sql::Unnamed(HOLD), &ids_type, &[&held]).await?;
            let name_types = [Type::INT8, Type::INT8_ARRAY];
            tx.execute(Sql::Unnamed(NAME_READY), &name_types, &[&id, &ready])
                .await?;
            tx.execute(Sql::Unnamed(NAME_HELD), &name_types, &[&id, &held])
                .await?;
            let step_types = [
                Type::INT8,
                Type::INT8_ARRAY,
                Type::TEXT_ARRAY,
                Type::TEXT_ARRAY,
                Type::INT4_ARRAY,
                Type::BOOL_ARRAY,
            ];
            let step_values: [&(dyn ToSql + Sync); 6] =
                [&id, &ids, &names, &states, &waiting, &anyway];
            tx.execute(Sql::Unnamed(STEPS_INSERT), &step_types, &step_values)
                .await?;
            let edge_types = [Type::INT8_ARRAY, Type::INT8_ARRAY];
            tx.execute(
                Sql::Unnamed(EDGES_INSERT),
                &edge_types,
                &[&deps, &dependants],
            )
            .await?;
            tx.commit().await?;
            let steps = (workflow.steps.iter().zip(&ids))
                .map(|(step, &job)| (step.name.clone(), job))
                .collect();
            Ok(WorkflowRun { id, steps })
        })
    }

    pub(super) fn workflow_get(&self, id: WorkflowId) -> Result<Option<WorkflowInfo>> {
        self.run(async |conn: &mut Session| {
            let tx = conn.transaction().await?;
            let head = tx
                .query(Sql::Unnamed(WORKFLOW_GET), &[Type::INT8], &[&id])
                .await?;
            let Some(head) = head.into_iter().next() else {
                return Ok(None);
            };
            let steps = tx
                .query(Sql::Unnamed(STEPS_GET), &[Type::INT8], &[&id])
                .await?;
            let edges = tx
                .query(Sql::Unnamed(EDGES_GET), &[Type::INT8], &[&id])
                .await?;
            tx.commit().await?;
            let mut steps: Vec<StepInfo> = (steps.iter())
                .map(|r| StepInfo {
                    name: r.get(0),
                    job_id: r.get(1),
                    state: StepState::parse(r.get(2)),
                    after: Vec::new(),
                    waiting_on: r.get(3),
                    run_anyway: r.get(4),
                    cancelled_by: r.get(5),
                })
                .collect();
            for edge in &edges {
                let job: JobId = edge.get(0);
                if let Some(step) = steps.iter_mut().find(|s| s.job_id == job) {
                    step.after.push(edge.get(1));
                }
            }
            Ok(Some(WorkflowInfo {
                id,
                name: head.get(0),
                state: WorkflowState::parse(head.get(1)),
                pending: head.get(2),
                failed: head.get(3),
                created_at: head.get(4),
                finished_at: head.get(5),
                steps,
            }))
        })
    }

    /// Cancels the workflow's waiting steps; the ready ones it returns are the caller's to
    /// cancel.
    pub(super) fn workflow_cancel(&self, id: WorkflowId) -> Result<(WorkflowCancel, Vec<JobId>)> {
        self.run(async |conn: &mut Session| {
            let tx = conn.transaction().await?;
            let state = tx
                .query(Sql::Unnamed(CANCEL_LOCK), &[Type::INT8], &[&id])
                .await?;
            let Some(state) = state.into_iter().next() else {
                return Ok((WorkflowCancel::NotFound, Vec::new()));
            };
            if state.get::<_, &str>(0) != "running" {
                return Ok((WorkflowCancel::Finished, Vec::new()));
            }
            let ready = tx
                .query(Sql::Unnamed(CANCEL_WAITING), &[Type::INT8], &[&id])
                .await?;
            let ready = ready.iter().map(|r| r.get(0)).collect();
            tx.commit().await?;
            Ok((WorkflowCancel::Cancelled, ready))
        })
    }

    pub(super) fn workflow_dependency(&self, job: JobId, step: &str) -> Result<Option<JobId>> {
        self.run(async |conn: &mut Session| {
            let types = [Type::INT8, Type::TEXT];
            let rows = conn
                .query(Sql::Unnamed(DEPENDENCY), &types, &[&job, &step])
                .await?;
            Ok(rows.first().map(|r| r.get(0)))
        })
    }

    pub(super) fn workflow_step_state(&self, job: JobId) -> Result<Option<StepState>> {
        self.run(async |conn: &mut Session| {
            let rows = conn
                .query(Sql::Unnamed(STEP_STATE), &[Type::INT8], &[&job])
                .await?;
            Ok(rows.first().map(|r| StepState::parse(r.get(0))))
        })
    }
}
