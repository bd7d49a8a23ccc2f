//! Workflows on MySQL: the insert of a whole workflow in one transaction, reading,
//! cancelling, retrying and pruning one, adding to a batch, and the calls that finish a step.
//!
//! What happens as a step finishes is migration 0020's procedures (`dj_workflow_finish`,
//! `dj_workflow_step_retried`, `dj_workflow_restore`): where the other backends' triggers on
//! `delayed_jobs` call their bookkeeping, MySQL can have no such trigger (it could not move a
//! released step into the table whose statement fired it), so every statement of dj's that
//! finishes or retries a step's row is followed, in its transaction, by the call here.

use std::sync::LazyLock;

use mysql::prelude::Queryable;
use mysql::Value;

use super::insert;
use super::rows::{col, id_list, params, time};
use super::sql::DIALECT;
use super::MysqlStore;
use crate::error::Result;
use crate::model::{
    JobFilter, JobId, NewJob, NewWorkflow, StepInfo, StepRuns, StepState, WorkflowCancel,
    WorkflowId, WorkflowInfo, WorkflowRun, WorkflowState, BATCH_CALLBACKS,
};
use crate::store::batch_closed;
use crate::store::filter;
use crate::store::workflow::{
    attach_edges, retry_failed, COUNTS, DEPENDENCY, EDGES_GET, STEPS_GET, STEP_STATE, WORKFLOW_OF,
};

/// `?` job, `?` whether it succeeded: the step's finish (a no-op for a row that is no ready
/// step).
pub(super) const FINISH: &str = "CALL dj_workflow_finish(?, ?)";
/// `?` job: a failed step retried.
const STEP_RETRIED: &str = "CALL dj_workflow_step_retried(?)";
/// `?` workflow: its cancelled held steps put back (the count in `@dj_restored`).
const RESTORE: &str = "CALL dj_workflow_restore(?, @dj_restored)";
const RESTORED: &str = "SELECT @dj_restored";

/// The shared texts, with MySQL's bare `?` for their `$N` (each used once, in order).
fn positional(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

static STEPS: LazyLock<String> = LazyLock::new(|| positional(STEPS_GET));
static EDGES: LazyLock<String> = LazyLock::new(|| positional(EDGES_GET));
static DEPENDENCY_OF: LazyLock<String> = LazyLock::new(|| positional(DEPENDENCY));
static STATE_OF_STEP: LazyLock<String> = LazyLock::new(|| positional(STEP_STATE));
static WORKFLOW_OF_JOB: LazyLock<String> = LazyLock::new(|| positional(WORKFLOW_OF));

const WORKFLOW_INSERT: &str = "INSERT INTO dj_workflows (name, kind, steps, pending) \
     VALUES (?, ?, ?, ?)";

/// The steps that wait move to the held rows before any of them names its workflow.
fn hold(ids: &str) -> [String; 2] {
    [
        format!("INSERT INTO dj_held_jobs SELECT * FROM delayed_jobs WHERE id IN ({ids})"),
        format!("DELETE FROM delayed_jobs WHERE id IN ({ids})"),
    ]
}
fn name_rows(table: &str, ids: &str) -> String {
    format!("UPDATE {table} SET workflow_id = ? WHERE id IN ({ids})")
}

/// Rows of a multi-row insert per statement (steps, links).
const ROWS_PER_INSERT: usize = 500;

const SECS: &str = "UNIX_TIMESTAMP(created_at) + 0e0, UNIX_TIMESTAMP(finished_at) + 0e0";

static WORKFLOW_GET: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT name, state, pending, failed, {SECS}, kind FROM dj_workflows WHERE id = ?")
});
static LIST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, name, state, pending, failed, {SECS}, kind \
         FROM dj_workflows ORDER BY id DESC LIMIT ?"
    )
});

/// The workflow's row, locked as every step's finish locks it: its state.
const LOCK: &str = "SELECT state FROM dj_workflows WHERE id = ? FOR UPDATE";

const WAITING_COUNT: &str =
    "SELECT count(*) FROM dj_workflow_steps WHERE workflow_id = ? AND state = 'waiting'";
/// `?` waiting count (three times), `?` workflow.
const CANCEL_MARK: &str = "UPDATE dj_workflows SET state = 'cancelled', \
         finished_at = IF(pending = ?, UTC_TIMESTAMP(6), NULL), \
         pending = pending - ?, failed = failed + ? \
     WHERE id = ?";
const CANCEL_WAITING: &str = "UPDATE dj_workflow_steps SET state = 'cancelled', \
         finished_at = UTC_TIMESTAMP(6) \
     WHERE workflow_id = ? AND state = 'waiting'";
const READY_STEPS: &str = "SELECT job_id FROM dj_workflow_steps \
     WHERE workflow_id = ? AND state = 'ready' ORDER BY job_id";

/// Up to `?` workflows finished more than `?` seconds ago, oldest first.
const PRUNED: &str = "SELECT id FROM dj_workflows \
     WHERE finished_at < UTC_TIMESTAMP(6) - INTERVAL ROUND(? * 1000000) MICROSECOND \
     ORDER BY finished_at LIMIT ? FOR UPDATE SKIP LOCKED";

const BATCH_LOCK: &str = "SELECT kind, state, steps FROM dj_workflows WHERE id = ? FOR UPDATE";
static BATCH_CALLBACKS_GONE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT CAST(COALESCE(SUM(state <> 'waiting'), 0) AS SIGNED), count(*) \
         FROM dj_workflow_steps WHERE workflow_id = ? AND step IN ({})",
        callbacks()
    )
});
/// `?` batch: each added job `{ids}` (its step written) linked to each of its callbacks.
fn batch_edges(ids: &str) -> String {
    format!(
        "INSERT INTO dj_workflow_edges (depends_on, job_id) \
         SELECT s.job_id, c.job_id FROM dj_workflow_steps s JOIN dj_workflow_steps c \
             ON c.workflow_id = s.workflow_id AND c.step IN ({}) \
         WHERE s.workflow_id = ? AND s.job_id IN ({ids})",
        callbacks()
    )
}
static BATCH_CALLBACKS_WAIT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE dj_workflow_steps SET waiting_on = waiting_on + ? \
         WHERE workflow_id = ? AND step IN ({})",
        callbacks()
    )
});
const BATCH_GROW: &str =
    "UPDATE dj_workflows SET steps = steps + ?, pending = pending + ? WHERE id = ?";

/// The batch callbacks' step names, quoted for an `IN` list.
fn callbacks() -> String {
    (BATCH_CALLBACKS.iter())
        .map(|name| format!("'{name}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts `rows` (each a tuple of values) into `table (columns)`, up to
/// [`ROWS_PER_INSERT`] a statement.
fn insert_rows(
    tx: &mut mysql::Transaction<'_>,
    table: &str,
    rows: &[Vec<Value>],
) -> mysql::Result<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let width = chunk[0].len();
        let tuple = format!("({})", vec!["?"; width].join(", "));
        let tuples = vec![tuple.as_str(); chunk.len()].join(", ");
        let values: Vec<Value> = chunk.iter().flatten().cloned().collect();
        tx.exec_drop(format!("INSERT INTO {table} VALUES {tuples}"), values)?;
    }
    Ok(())
}

/// Finishes step `id` (its row just deleted or failed for good by this transaction).
pub(super) fn finish(q: &mut impl Queryable, id: JobId, ok: bool) -> mysql::Result<()> {
    q.exec_drop(FINISH, (id, ok))
}

/// The failed steps among the rows a [`filter::update`] with `filter` retries, locked, in
/// id order.
fn failed_steps(tx: &mut mysql::Transaction<'_>, filter: &JobFilter) -> mysql::Result<Vec<JobId>> {
    let select = filter::failed_steps(&DIALECT, filter);
    tx.exec(&select.sql, params(&select))
}

/// Runs a retry `update` of the rows `filter` names, then counts the failed steps it
/// retried as pending again.
pub(super) fn retry_steps(
    tx: &mut mysql::Transaction<'_>,
    filter: &JobFilter,
    update: &filter::Statement,
) -> mysql::Result<u64> {
    let steps = failed_steps(tx, filter)?;
    let n = tx.exec_iter(&update.sql, params(update))?.affected_rows();
    for id in steps {
        tx.exec_drop(STEP_RETRIED, (id,))?;
    }
    Ok(n)
}

/// Deletes the rows `filter` names, the workflow steps among them counted as not
/// succeeded.
pub(super) fn delete_steps(
    tx: &mut mysql::Transaction<'_>,
    filter: &JobFilter,
) -> mysql::Result<u64> {
    let steps = {
        let select = filter::unfailed_steps(&DIALECT, filter);
        tx.exec::<JobId, _, _>(&select.sql, params(&select))?
    };
    let delete = filter::delete(&DIALECT, filter);
    let n = tx.exec_iter(&delete.sql, params(&delete))?.affected_rows();
    for id in steps {
        finish(tx, id, false)?;
    }
    Ok(n)
}

impl MysqlStore {
    pub(super) fn workflow_insert(&self, workflow: &NewWorkflow) -> Result<WorkflowRun> {
        let rows: Vec<_> = workflow.steps.iter().map(|s| s.row.clone()).collect();
        let total = workflow.steps.len() as i64;
        self.write(|tx| {
            tx.exec_drop(
                WORKFLOW_INSERT,
                (&workflow.name, workflow.kind(), total, total),
            )?;
            let id = tx.last_insert_id().unwrap_or_default() as WorkflowId;
            let ids: Vec<JobId> = (insert::within(tx, &rows)?.into_iter())
                .map(|outcome| outcome.id())
                .collect();
            let (ready, held) = workflow.ready_and_held(&ids);
            let steps: Vec<Vec<Value>> = (workflow.steps.iter().zip(&ids))
                .map(|(step, &job)| {
                    vec![
                        job.into(),
                        id.into(),
                        step.name.as_str().into(),
                        NewWorkflow::initial_state(step).as_str().into(),
                        step.runs.as_str().into(),
                        (step.after.len() as i64).into(),
                    ]
                })
                .collect();
            insert_rows(
                tx,
                "dj_workflow_steps (job_id, workflow_id, step, state, runs, waiting_on)",
                &steps,
            )?;
            if !held.is_empty() {
                let held = id_list(&held);
                for statement in hold(&held) {
                    tx.query_drop(statement)?;
                }
                tx.exec_drop(name_rows("dj_held_jobs", &held), (id,))?;
            }
            if !ready.is_empty() {
                tx.exec_drop(name_rows("delayed_jobs", &id_list(&ready)), (id,))?;
            }
            let edges: Vec<Vec<Value>> = (workflow.edges())
                .map(|(dep, step)| vec![ids[dep].into(), ids[step].into()])
                .collect();
            if !edges.is_empty() {
                insert_rows(tx, "dj_workflow_edges (depends_on, job_id)", &edges)?;
            }
            Ok(workflow.run(id, &ids))
        })
    }

    pub(super) fn workflow_get(&self, id: WorkflowId) -> Result<Option<WorkflowInfo>> {
        self.write(|tx| {
            let Some(row) = tx.exec_first::<mysql::Row, _, _>(WORKFLOW_GET.as_str(), (id,))? else {
                return Ok(None);
            };
            let mut info = workflow_info(id, &row, 0)?;
            let steps: Vec<mysql::Row> = tx.exec(STEPS.as_str(), (id,))?;
            info.steps = (steps.into_iter())
                .map(|r| {
                    Ok(StepInfo {
                        name: col(&r, 0)?,
                        job_id: col(&r, 1)?,
                        state: StepState::parse(&col::<String>(&r, 2)?),
                        after: Vec::new(),
                        waiting_on: col(&r, 3)?,
                        runs: StepRuns::parse(&col::<String>(&r, 4)?),
                        cancelled_by: col(&r, 5)?,
                    })
                })
                .collect::<mysql::Result<_>>()?;
            let edges: Vec<(JobId, String)> = tx.exec(EDGES.as_str(), (id,))?;
            attach_edges(&mut info.steps, edges);
            Ok(Some(info))
        })
    }

    /// Cancels the workflow's waiting steps; the ready ones it returns are the caller's to
    /// cancel.
    pub(super) fn workflow_cancel(&self, id: WorkflowId) -> Result<(WorkflowCancel, Vec<JobId>)> {
        self.write(|tx| {
            let state: Option<String> = tx.exec_first(LOCK, (id,))?;
            match state.as_deref() {
                None => return Ok((WorkflowCancel::NotFound, Vec::new())),
                Some("running") => {}
                Some(_) => return Ok((WorkflowCancel::Finished, Vec::new())),
            }
            let waiting: i64 = tx.exec_first(WAITING_COUNT, (id,))?.unwrap_or_default();
            tx.exec_drop(CANCEL_MARK, (waiting, waiting, waiting, id))?;
            tx.exec_drop(CANCEL_WAITING, (id,))?;
            let ready = tx.exec(READY_STEPS, (id,))?;
            Ok((WorkflowCancel::Cancelled, ready))
        })
    }

    /// Retries the workflow's failed steps and puts back the ones cancelled and still held,
    /// in one transaction; `None` if there is no such workflow.
    pub(super) fn workflow_retry(&self, id: WorkflowId) -> Result<Option<u64>> {
        let retry = retry_failed(&DIALECT, id);
        let failed = JobFilter {
            workflow: Some(id),
            state: Some(crate::model::JobState::Failed),
            ..JobFilter::default()
        };
        let mut found = true;
        let changed = self.waking(|tx| {
            if tx.exec_first::<String, _, _>(LOCK, (id,))?.is_none() {
                found = false;
                return Ok(0);
            }
            // Put back before the failed rows are retried, so that each counts them as
            // dependencies still to finish.
            tx.exec_drop(RESTORE, (id,))?;
            let restored: i64 = tx.query_first(RESTORED)?.flatten().unwrap_or_default();
            let retried = retry_steps(tx, &failed, &retry)?;
            Ok(restored as u64 + retried)
        })?;
        Ok(found.then_some(changed))
    }

    pub(super) fn workflow_list(&self, limit: i64) -> Result<Vec<WorkflowInfo>> {
        self.run(|conn| {
            let rows: Vec<mysql::Row> = conn.exec(LIST.as_str(), (limit,))?;
            (rows.iter())
                .map(|r| workflow_info(col(r, 0)?, r, 1))
                .collect()
        })
    }

    pub(super) fn workflow_counts(&self) -> Result<Vec<(WorkflowState, i64)>> {
        let rows: Vec<(String, i64)> = self.run(|conn| conn.query(COUNTS))?;
        Ok((rows.into_iter())
            .map(|(state, n)| (WorkflowState::parse(&state), n))
            .collect())
    }

    /// Up to `limit` workflows finished more than `older_than` ago, with their links, held
    /// rows and steps (by the foreign key).
    pub(super) fn workflow_prune(
        &self,
        older_than: std::time::Duration,
        limit: i64,
    ) -> Result<u64> {
        let secs = older_than.as_secs_f64();
        self.write(|tx| {
            let old: Vec<WorkflowId> = tx.exec(PRUNED, (secs, limit))?;
            if old.is_empty() {
                return Ok(0);
            }
            let old = id_list(&old);
            let steps =
                format!("SELECT job_id FROM dj_workflow_steps WHERE workflow_id IN ({old})");
            tx.query_drop(format!(
                "DELETE FROM dj_workflow_edges WHERE job_id IN ({steps})"
            ))?;
            tx.query_drop(format!("DELETE FROM dj_held_jobs WHERE id IN ({steps})"))?;
            let gone = tx
                .query_iter(format!("DELETE FROM dj_workflows WHERE id IN ({old})"))?
                .affected_rows();
            Ok(gone)
        })
    }

    /// Adds `rows` to open batch `id` in one transaction, its row locked: the callbacks wait
    /// for them as well.
    pub(super) fn batch_add(&self, id: WorkflowId, rows: &[NewJob]) -> Result<Vec<JobId>> {
        let added = self.write(|tx| {
            let head: Option<(String, String, i64)> = tx.exec_first(BATCH_LOCK, (id,))?;
            let Some((kind, state, steps)) = head else {
                return Ok(Err(format!("no batch {id}")));
            };
            let (fired, callbacks): (i64, i64) = tx
                .exec_first(BATCH_CALLBACKS_GONE.as_str(), (id,))?
                .unwrap_or_default();
            if let Some(why) = batch_closed(id, &kind, &state, fired) {
                return Ok(Err(why));
            }
            let members = (steps - callbacks) as usize;
            let ids: Vec<JobId> = (insert::within(tx, rows)?.into_iter())
                .map(|outcome| outcome.id())
                .collect();
            if ids.is_empty() {
                return Ok(Ok(ids));
            }
            tx.exec_drop(name_rows("delayed_jobs", &id_list(&ids)), (id,))?;
            let steps: Vec<Vec<Value>> = (ids.iter().enumerate())
                .map(|(i, &job)| {
                    vec![
                        job.into(),
                        id.into(),
                        format!("job-{}", members + i + 1).into(),
                        "ready".into(),
                    ]
                })
                .collect();
            insert_rows(
                tx,
                "dj_workflow_steps (job_id, workflow_id, step, state)",
                &steps,
            )?;
            tx.exec_drop(batch_edges(&id_list(&ids)), (id,))?;
            let n = ids.len() as i64;
            tx.exec_drop(BATCH_CALLBACKS_WAIT.as_str(), (n, id))?;
            tx.exec_drop(BATCH_GROW, (n, n, id))?;
            Ok(Ok(ids))
        })?;
        added.map_err(crate::Error::Invalid)
    }

    pub(super) fn workflow_dependency(&self, job: JobId, step: &str) -> Result<Option<JobId>> {
        self.run(|conn| conn.exec_first(DEPENDENCY_OF.as_str(), (job, step)))
    }

    pub(super) fn workflow_of(&self, job: JobId) -> Result<Option<WorkflowId>> {
        self.run(|conn| conn.exec_first(WORKFLOW_OF_JOB.as_str(), (job,)))
    }

    pub(super) fn workflow_step_state(&self, job: JobId) -> Result<Option<StepState>> {
        let state: Option<String> =
            self.run(|conn| conn.exec_first(STATE_OF_STEP.as_str(), (job,)))?;
        Ok(state.as_deref().map(StepState::parse))
    }
}

/// A workflow's head from `row`, its columns from `at`: name, state, pending, failed,
/// created, finished, kind.
fn workflow_info(id: WorkflowId, row: &mysql::Row, at: usize) -> mysql::Result<WorkflowInfo> {
    Ok(WorkflowInfo {
        id,
        name: col(row, at)?,
        state: WorkflowState::parse(&col::<String>(row, at + 1)?),
        pending: col(row, at + 2)?,
        failed: col(row, at + 3)?,
        created_at: col::<Option<f64>>(row, at + 4)?.map_or(std::time::UNIX_EPOCH, time),
        finished_at: col::<Option<f64>>(row, at + 5)?.map(time),
        batch: col::<String>(row, at + 6)? == "batch",
        steps: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::positional;

    #[test]
    fn numbered_placeholders_become_bare_ones() {
        assert_eq!(
            positional("SELECT a FROM t WHERE x = $1 AND y = $12 AND z = '$'"),
            "SELECT a FROM t WHERE x = ? AND y = ? AND z = '$'"
        );
    }
}
