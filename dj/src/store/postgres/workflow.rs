//! Workflows on PostgreSQL: the insert of a whole workflow in one transaction, and reading
//! and cancelling one. What happens as steps finish is the schema's (migration 0020's
//! triggers), whoever finishes them.

use tokio_postgres::types::{ToSql, Type};

use super::insert::{self, Shape};
use super::pool::{Session, Sql};
use super::sql::{waking, DIALECT};
use super::{rows, PgStore};
use crate::error::Result;
use crate::model::{
    JobId, NewJob, NewWorkflow, StepInfo, StepRuns, StepState, WorkflowCancel, WorkflowId,
    WorkflowInfo, WorkflowRun, WorkflowState, BATCH_CALLBACKS,
};
use crate::store::batch_closed;
use crate::store::workflow::{
    attach_edges, retry_failed, COUNTS, DEPENDENCY, EDGES_GET, STEPS_GET, STEP_STATE,
    WORKFLOW_INSERT, WORKFLOW_OF,
};

/// The steps that wait move from delayed_jobs, where the one insert algorithm put them, to
/// the held rows, before any of them names its workflow (so the delete trigger skips them).
const HOLD: &str = "WITH moved AS (DELETE FROM delayed_jobs WHERE id = ANY($1) RETURNING *) \
     INSERT INTO dj_held_jobs SELECT * FROM moved";
const NAME_READY: &str = "UPDATE delayed_jobs SET workflow_id = $1 WHERE id = ANY($2)";
const NAME_HELD: &str = "UPDATE dj_held_jobs SET workflow_id = $1 WHERE id = ANY($2)";

const STEPS_INSERT: &str = "INSERT INTO dj_workflow_steps \
         (workflow_id, job_id, step, state, waiting_on, runs) \
     SELECT $1, * FROM unnest($2::int8[], $3::text[], $4::text[], $5::int4[], $6::text[])";

const EDGES_INSERT: &str = "INSERT INTO dj_workflow_edges (depends_on, job_id) \
     SELECT * FROM unnest($1::int8[], $2::int8[])";

const WORKFLOW_GET: &str = "SELECT name, state, pending, failed, created_at, finished_at, kind \
     FROM dj_workflows WHERE id = $1";

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

/// A retry puts the workflow's cancelled steps that are still held back to waiting, each on
/// its dependencies that have not succeeded (the failed ones are retried with them); returns
/// how many.
const RETRY_RESTORE: &str = "WITH restored AS ( \
         UPDATE dj_workflow_steps s SET state = 'waiting', cancelled_by = NULL, \
             finished_at = NULL, failed_deps = 0, \
             waiting_on = (SELECT count(*) FROM dj_workflow_edges e \
                           JOIN dj_workflow_steps d ON d.job_id = e.depends_on \
                           WHERE e.job_id = s.job_id AND d.state <> 'succeeded') \
         WHERE s.workflow_id = $1 AND s.state = 'cancelled' \
           AND EXISTS (SELECT 1 FROM dj_held_jobs h WHERE h.id = s.job_id) \
         RETURNING s.job_id), \
     counted AS ( \
         UPDATE dj_workflows SET state = 'running', finished_at = NULL, \
             pending = pending + (SELECT count(*) FROM restored), \
             failed = failed - (SELECT count(*) FROM restored) \
         WHERE id = $1 RETURNING id) \
     SELECT count(*) FROM restored";

/// Restored steps whose dependencies all succeeded (cancelled with the workflow) go now.
const RETRY_RELEASE: &str = "UPDATE dj_workflows SET pending = pending - dj_workflow_release( \
         ARRAY(SELECT job_id FROM dj_workflow_steps \
               WHERE workflow_id = $1 AND state = 'waiting' AND waiting_on <= 0)) \
     WHERE id = $1";

const LIST: &str = "SELECT id, name, state, pending, failed, created_at, finished_at, kind \
     FROM dj_workflows ORDER BY id DESC LIMIT $1";

/// Up to `$2` workflows finished more than `$1` seconds ago, with their steps (by the
/// foreign key), links and held rows.
const PRUNE: &str = "WITH old AS ( \
         SELECT id FROM dj_workflows \
         WHERE finished_at < now() - $1 * interval '1 second' \
         ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
     steps AS (SELECT job_id FROM dj_workflow_steps WHERE workflow_id IN (SELECT id FROM old)), \
     edges AS (DELETE FROM dj_workflow_edges WHERE job_id IN (SELECT job_id FROM steps)), \
     held AS (DELETE FROM dj_held_jobs WHERE id IN (SELECT job_id FROM steps)), \
     gone AS (DELETE FROM dj_workflows WHERE id IN (SELECT id FROM old) RETURNING 1) \
     SELECT count(*) FROM gone";

/// A batch's row, locked: its kind, state and step count.
const BATCH_LOCK: &str = "SELECT kind, state, steps FROM dj_workflows WHERE id = $1 FOR UPDATE";

/// How many of its callbacks have fired or were cancelled, and how many it has.
const BATCH_CALLBACKS_GONE: &str = "SELECT count(*) FILTER (WHERE state <> 'waiting'), count(*) \
     FROM dj_workflow_steps WHERE workflow_id = $1 AND step = ANY($2)";

/// Added jobs: their steps, their links to the callbacks, the callbacks' and the batch's
/// counts.
const BATCH_STEPS: &str = "INSERT INTO dj_workflow_steps (workflow_id, job_id, step, state) \
     SELECT $1, * , 'ready' FROM unnest($2::int8[], $3::text[])";
const BATCH_EDGES: &str = "INSERT INTO dj_workflow_edges (depends_on, job_id) \
     SELECT n.id, c.job_id FROM unnest($2::int8[]) AS n(id) \
     CROSS JOIN dj_workflow_steps c WHERE c.workflow_id = $1 AND c.step = ANY($3)";
const BATCH_CALLBACKS_WAIT: &str = "UPDATE dj_workflow_steps SET waiting_on = waiting_on + $3 \
     WHERE workflow_id = $1 AND step = ANY($2)";
const BATCH_GROW: &str =
    "UPDATE dj_workflows SET steps = steps + $2, pending = pending + $2 WHERE id = $1";

impl PgStore {
    pub(super) fn workflow_insert(&self, workflow: &NewWorkflow) -> Result<WorkflowRun> {
        let rows: Vec<_> = workflow.steps.iter().map(|s| s.row.clone()).collect();
        let total = workflow.steps.len() as i32;
        self.run(async |conn: &mut Session| {
            let mut tx = conn.transaction().await?;
            let id: WorkflowId = tx
                .query(
                    Sql::Unnamed(WORKFLOW_INSERT),
                    &[Type::TEXT, Type::TEXT, Type::INT4],
                    &[&workflow.name, &workflow.kind(), &total],
                )
                .await?[0]
                .get(0);
            let ids: Vec<JobId> = insert::insert_within(&mut tx, &rows, Shape::BATCHED)
                .await?
                .into_iter()
                .map(|outcome| outcome.id())
                .collect();
            let (ready, held) = workflow.ready_and_held(&ids);
            let (mut names, mut states, mut waiting, mut runs) = (vec![], vec![], vec![], vec![]);
            for step in &workflow.steps {
                names.push(step.name.as_str());
                states.push(NewWorkflow::initial_state(step).as_str());
                waiting.push(step.after.len() as i32);
                runs.push(step.runs.as_str());
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
                Type::TEXT_ARRAY,
            ];
            let step_values: [&(dyn ToSql + Sync); 6] =
                [&id, &ids, &names, &states, &waiting, &runs];
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
            Ok(workflow.run(id, &ids))
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
                    runs: StepRuns::parse(r.get(4)),
                    cancelled_by: r.get(5),
                })
                .collect();
            attach_edges(&mut steps, edges.iter().map(|e| (e.get(0), e.get(1))));
            Ok(Some(WorkflowInfo {
                id,
                name: head.get(0),
                state: WorkflowState::parse(head.get(1)),
                pending: head.get(2),
                failed: head.get(3),
                created_at: head.get(4),
                finished_at: head.get(5),
                batch: head.get::<_, &str>(6) == "batch",
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

    /// Retries the workflow's failed steps and puts back the ones cancelled and still held,
    /// in one transaction; `None` if there is no such workflow.
    pub(super) fn workflow_retry(&self, id: WorkflowId) -> Result<Option<u64>> {
        let retry = retry_failed(&DIALECT, id);
        let retry_sql = format!(waking!("{}"), retry.sql);
        self.run(async |conn: &mut Session| {
            let tx = conn.transaction().await?;
            let id_type = [Type::INT8];
            if tx
                .query(Sql::Unnamed(CANCEL_LOCK), &id_type, &[&id])
                .await?
                .is_empty()
            {
                return Ok(None);
            }
            let restored = tx
                .query(Sql::Unnamed(RETRY_RESTORE), &id_type, &[&id])
                .await?;
            let restored: i64 = restored[0].get(0);
            tx.query(Sql::Unnamed(RETRY_RELEASE), &id_type, &[&id])
                .await?;
            let (types, params) = (rows::types(&retry), rows::params(&retry));
            let retried = tx.query(Sql::Built(&retry_sql), &types, &params).await?;
            let retried: i64 = retried[0].get(0);
            tx.commit().await?;
            Ok(Some((restored + retried) as u64))
        })
    }

    pub(super) fn workflow_list(&self, limit: i64) -> Result<Vec<WorkflowInfo>> {
        self.run(async |conn: &mut Session| {
            let rows = conn
                .query(Sql::Unnamed(LIST), &[Type::INT8], &[&limit])
                .await?;
            Ok(rows
                .iter()
                .map(|r| WorkflowInfo {
                    id: r.get(0),
                    name: r.get(1),
                    state: WorkflowState::parse(r.get(2)),
                    pending: r.get(3),
                    failed: r.get(4),
                    created_at: r.get(5),
                    finished_at: r.get(6),
                    batch: r.get::<_, &str>(7) == "batch",
                    steps: Vec::new(),
                })
                .collect())
        })
    }

    pub(super) fn workflow_counts(&self) -> Result<Vec<(WorkflowState, i64)>> {
        self.run(async |conn: &mut Session| {
            let rows = conn.query(Sql::Unnamed(COUNTS), &[], &[]).await?;
            Ok(rows
                .iter()
                .map(|r| (WorkflowState::parse(r.get(0)), r.get(1)))
                .collect())
        })
    }

    pub(super) fn workflow_prune(
        &self,
        older_than: std::time::Duration,
        limit: i64,
    ) -> Result<u64> {
        let secs = older_than.as_secs_f64();
        self.run(async |conn: &mut Session| {
            let types = [Type::FLOAT8, Type::INT8];
            let rows = conn
                .query(Sql::Unnamed(PRUNE), &types, &[&secs, &limit])
                .await?;
            Ok(rows[0].get::<_, i64>(0) as u64)
        })
    }

    /// Adds `rows` to open batch `id` in one transaction, under its row's lock (which every
    /// finishing job of the batch takes too): the callbacks wait for them as well.
    pub(super) fn batch_add(&self, id: WorkflowId, rows: &[NewJob]) -> Result<Vec<JobId>> {
        let callbacks: Vec<&str> = BATCH_CALLBACKS.to_vec();
        let added = self.run(async |conn: &mut Session| {
            let mut tx = conn.transaction().await?;
            let id_type = [Type::INT8];
            let head = tx.query(Sql::Unnamed(BATCH_LOCK), &id_type, &[&id]).await?;
            let Some(head) = head.first() else {
                return Ok(Err(format!("no batch {id}")));
            };
            let (kind, state, steps): (&str, &str, i32) = (head.get(0), head.get(1), head.get(2));
            let types = [Type::INT8, Type::TEXT_ARRAY];
            let values: [&(dyn ToSql + Sync); 2] = [&id, &callbacks];
            let gone = tx.query(Sql::Unnamed(BATCH_CALLBACKS_GONE), &types, &values);
            let gone = gone.await?;
            let (fired, callbacks_count): (i64, i64) = (gone[0].get(0), gone[0].get(1));
            if let Some(why) = batch_closed(id, kind, state, fired) {
                return Ok(Err(why));
            }
            let ids: Vec<JobId> = insert::insert_within(&mut tx, rows, Shape::BATCHED)
                .await?
                .into_iter()
                .map(|outcome| outcome.id())
                .collect();
            let members = steps as usize - callbacks_count as usize;
            let names: Vec<String> = (0..ids.len())
                .map(|i| format!("job-{}", members + i + 1))
                .collect();
            let n = ids.len() as i32;
            let name_types = [Type::INT8, Type::INT8_ARRAY];
            tx.execute(Sql::Unnamed(NAME_READY), &name_types, &[&id, &ids])
                .await?;
            let step_types = [Type::INT8, Type::INT8_ARRAY, Type::TEXT_ARRAY];
            tx.execute(Sql::Unnamed(BATCH_STEPS), &step_types, &[&id, &ids, &names])
                .await?;
            let edge_types = [Type::INT8, Type::INT8_ARRAY, Type::TEXT_ARRAY];
            tx.execute(
                Sql::Unnamed(BATCH_EDGES),
                &edge_types,
                &[&id, &ids, &callbacks],
            )
            .await?;
            let wait_types = [Type::INT8, Type::TEXT_ARRAY, Type::INT4];
            tx.execute(
                Sql::Unnamed(BATCH_CALLBACKS_WAIT),
                &wait_types,
                &[&id, &callbacks, &n],
            )
            .await?;
            tx.execute(
                Sql::Unnamed(BATCH_GROW),
                &[Type::INT8, Type::INT4],
                &[&id, &n],
            )
            .await?;
            tx.commit().await?;
            Ok(Ok(ids))
        })?;
        added.map_err(crate::Error::Invalid)
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

    pub(super) fn workflow_of(&self, job: JobId) -> Result<Option<WorkflowId>> {
        self.run(async |conn: &mut Session| {
            let rows = conn
                .query(Sql::Unnamed(WORKFLOW_OF), &[Type::INT8], &[&job])
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
