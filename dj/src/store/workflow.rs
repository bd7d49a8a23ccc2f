//! The workflow statements the backends send as they are (SQLite numbers `$N` parameters in
//! the order they first appear, so each text names them in increasing order; MySQL reads
//! each `$N` as a bare `?`), and the retry's filtered update.

use super::filter::{self, Dialect};
use std::collections::HashMap;

use crate::model::{JobFilter, JobId, JobState, StepInfo, WorkflowId};

/// `$1` name, `$2` kind, `$3` step count: the new workflow's id (MySQL, without `RETURNING`,
/// has its own).
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) const WORKFLOW_INSERT: &str =
    "INSERT INTO dj_workflows (name, kind, steps, pending) VALUES ($1, $2, $3, $3) RETURNING id";

/// Workflow `$1`'s steps in the order they were added, each with the name of the step whose
/// failure cancelled it.
pub(crate) const STEPS_GET: &str =
    "SELECT s.step, s.job_id, s.state, s.waiting_on, s.runs, c.step \
     FROM dj_workflow_steps s LEFT JOIN dj_workflow_steps c ON c.job_id = s.cancelled_by \
     WHERE s.workflow_id = $1 ORDER BY s.job_id";

/// Workflow `$1`'s links: each step's job id and the name of a step it runs after.
pub(crate) const EDGES_GET: &str = "SELECT e.job_id, d.step FROM dj_workflow_edges e \
     JOIN dj_workflow_steps d ON d.job_id = e.depends_on \
     WHERE d.workflow_id = $1 ORDER BY e.job_id, e.depends_on";

/// The job id of step `$2` of the workflow whose step is job `$1`.
pub(crate) const DEPENDENCY: &str = "SELECT d.job_id FROM dj_workflow_steps me \
     JOIN dj_workflow_steps d ON d.workflow_id = me.workflow_id \
     WHERE me.job_id = $1 AND d.step = $2";

/// The state of the step whose job is `$1`.
pub(crate) const STEP_STATE: &str = "SELECT state FROM dj_workflow_steps WHERE job_id = $1";

/// The workflow whose step is job `$1`.
pub(crate) const WORKFLOW_OF: &str = "SELECT workflow_id FROM dj_workflow_steps WHERE job_id = $1";

/// Workflows by state.
pub(crate) const COUNTS: &str = "SELECT state, count(*) FROM dj_workflows GROUP BY state";

/// Gives each step the names of the steps it runs after, from [`EDGES_GET`]'s rows
/// (`(step's job id, dependency's name)`, in order): one look-up per link, whatever the
/// workflow's size.
pub(crate) fn attach_edges(
    steps: &mut [StepInfo],
    edges: impl IntoIterator<Item = (JobId, String)>,
) {
    let at: HashMap<JobId, usize> = (steps.iter().enumerate())
        .map(|(i, step)| (step.job_id, i))
        .collect();
    for (job, dependency) in edges {
        if let Some(&i) = at.get(&job) {
            steps[i].after.push(dependency);
        }
    }
}

/// A workflow retry's update of its failed rows: `retry`'s, for the rows of workflow `id`.
pub(crate) fn retry_failed(d: &Dialect, id: WorkflowId) -> filter::Statement {
    let failed = JobFilter {
        workflow: Some(id),
        state: Some(JobState::Failed),
        ..JobFilter::default()
    };
    filter::update(d, &failed, filter::Change::RetryNow)
}
