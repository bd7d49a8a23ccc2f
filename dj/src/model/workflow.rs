//! Workflows as the store keeps them: a new workflow on its way in, and what the app reads
//! back of one (its state and each step's).
//!
//! A step's states:
//!
//! ```text
//!   waiting ──(its last dependency finishes)──▶ ready ──▶ succeeded
//!      │                                          │
//!      │ (a dependency failed; or cancel)          └────▶ failed ──(retry)──▶ ready
//!      ▼
//!   cancelled                 (only_if_failed, and none failed) ──▶ skipped
//! ```

use std::time::SystemTime;

use super::{JobId, NewJob};

/// The id of a workflow (its `dj_workflows.id`).
pub type WorkflowId = i64;

/// A workflow ready to insert: every step's row, in the order given, with the positions of
/// the steps it runs after.
#[derive(Debug)]
pub(crate) struct NewWorkflow {
    pub(crate) name: String,
    pub(crate) steps: Vec<NewStep>,
    /// A [`crate::Batch`]: its callbacks are the steps named in [`BATCH_CALLBACKS`].
    pub(crate) batch: bool,
}

/// The names of a batch's callback steps.
pub(crate) const BATCH_CALLBACKS: [&str; 3] = ["on_success", "on_complete", "on_discard"];

impl NewWorkflow {
    /// As `dj_workflows.kind` stores it.
    pub(crate) fn kind(&self) -> &'static str {
        if self.batch {
            "batch"
        } else {
            "workflow"
        }
    }
}

/// One step of a [`NewWorkflow`].
#[derive(Debug)]
pub(crate) struct NewStep {
    pub(crate) name: String,
    pub(crate) row: NewJob,
    /// Positions in [`NewWorkflow::steps`], each at most once.
    pub(crate) after: Vec<usize>,
    pub(crate) runs: StepRuns,
}

/// When a step runs, once its dependencies have finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepRuns {
    /// If every dependency succeeded (the default); a failure cancels it.
    #[default]
    Succeeded,
    /// Once every dependency has finished, however ([`crate::WorkflowStep::run_anyway`]).
    Finished,
    /// Once every dependency has finished, only if one failed or was cancelled; skipped
    /// otherwise ([`crate::WorkflowStep::only_if_failed`]).
    Failed,
}

impl StepRuns {
    /// As stored.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StepRuns::Succeeded => "succeeded",
            StepRuns::Finished => "finished",
            StepRuns::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> StepRuns {
        match text {
            "finished" => StepRuns::Finished,
            "failed" => StepRuns::Failed,
            _ => StepRuns::Succeeded,
        }
    }
}

impl NewWorkflow {
    /// Each step's state as inserted: ready if it waits on nothing.
    pub(crate) fn initial_state(step: &NewStep) -> StepState {
        if step.after.is_empty() {
            StepState::Ready
        } else {
            StepState::Waiting
        }
    }

    /// The steps' job ids (`ids`, in step order) split into those ready at once and those
    /// held until their dependencies finish.
    pub(crate) fn ready_and_held(&self, ids: &[JobId]) -> (Vec<JobId>, Vec<JobId>) {
        let (ready, held): (Vec<_>, Vec<_>) = (self.steps.iter().zip(ids))
            .partition(|(step, _)| Self::initial_state(step) == StepState::Ready);
        let ids = |pairs: Vec<(&NewStep, &JobId)>| pairs.into_iter().map(|(_, &id)| id).collect();
        (ids(ready), ids(held))
    }

    /// The dependency edges as `(depends_on, step)` positions.
    pub(crate) fn edges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (self.steps.iter().enumerate())
            .flat_map(|(i, step)| step.after.iter().map(move |&dep| (dep, i)))
    }

    /// The workflow as inserted: workflow `id`, its steps' rows `ids` (in step order).
    pub(crate) fn run(&self, id: WorkflowId, ids: &[JobId]) -> WorkflowRun {
        let steps = (self.steps.iter().zip(ids))
            .map(|(step, &job)| (step.name.clone(), job))
            .collect();
        WorkflowRun { id, steps }
    }
}

/// What an enqueued workflow is: its id, and its steps' job ids by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRun {
    /// The workflow's id, for [`crate::Db::workflow`] and [`crate::Db::cancel_workflow`].
    pub id: WorkflowId,
    /// Each step's name and job id, in the order they were added.
    pub steps: Vec<(String, JobId)>,
}

impl WorkflowRun {
    /// The job id of step `name`, if the workflow has one by that name.
    pub fn step(&self, name: &str) -> Option<JobId> {
        (self.steps.iter())
            .find(|(step, _)| step == name)
            .map(|&(_, id)| id)
    }
}

/// A workflow's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    /// Some step has not finished.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// Every step finished, and at least one failed for good or was cancelled.
    Failed,
    /// An operator cancelled it ([`crate::Db::cancel_workflow`]); steps still running when
    /// it was cancelled may be finishing.
    Cancelled,
}

impl WorkflowState {
    pub(crate) fn parse(text: &str) -> WorkflowState {
        match text {
            "succeeded" => WorkflowState::Succeeded,
            "failed" => WorkflowState::Failed,
            "cancelled" => WorkflowState::Cancelled,
            _ => WorkflowState::Running,
        }
    }
}

/// A step's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Held until its dependencies finish; its row is not in `delayed_jobs` yet.
    Waiting,
    /// Its row is in `delayed_jobs`: waiting for a worker, running, or retrying.
    Ready,
    /// It succeeded.
    Succeeded,
    /// It failed for good (its row kept with `failed_at`, unless destroyed).
    Failed,
    /// It never ran: a dependency failed, the workflow was cancelled, or its row was deleted.
    Cancelled,
    /// It never ran: it runs only after a failure ([`StepRuns::Failed`]), and none failed.
    Skipped,
}

impl StepState {
    pub(crate) fn parse(text: &str) -> StepState {
        match text {
            "waiting" => StepState::Waiting,
            "ready" => StepState::Ready,
            "succeeded" => StepState::Succeeded,
            "failed" => StepState::Failed,
            "skipped" => StepState::Skipped,
            _ => StepState::Cancelled,
        }
    }

    /// As stored.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StepState::Waiting => "waiting",
            StepState::Ready => "ready",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Cancelled => "cancelled",
            StepState::Skipped => "skipped",
        }
    }
}

/// A workflow as [`crate::Db::workflow`] reads it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkflowInfo {
    /// Its id.
    pub id: WorkflowId,
    /// The name it was given.
    pub name: String,
    /// A [`crate::Batch`] (its callbacks are the steps `on_success`, `on_complete` and
    /// `on_discard`), not a [`crate::Workflow`].
    pub batch: bool,
    /// Its state.
    pub state: WorkflowState,
    /// Steps not yet finished.
    pub pending: i32,
    /// Steps that failed for good or were cancelled.
    pub failed: i32,
    /// When it was enqueued (by the database's clock).
    #[serde(skip)]
    pub created_at: SystemTime,
    /// When its last step finished.
    #[serde(skip)]
    pub finished_at: Option<SystemTime>,
    /// Its steps, in the order they were added.
    pub steps: Vec<StepInfo>,
}

/// One step of a [`WorkflowInfo`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepInfo {
    /// Its name within the workflow.
    pub name: String,
    /// Its job's id (its row's, in `delayed_jobs` once ready).
    pub job_id: JobId,
    /// Its state.
    pub state: StepState,
    /// The steps it runs after.
    pub after: Vec<String>,
    /// Dependencies it still waits on.
    pub waiting_on: i32,
    /// When it runs, once its dependencies have finished.
    pub runs: StepRuns,
    /// The step whose failure cancelled it, if one did.
    pub cancelled_by: Option<String>,
}

impl WorkflowInfo {
    /// Step `name`, if there is one.
    pub fn step(&self, name: &str) -> Option<&StepInfo> {
        self.steps.iter().find(|s| s.name == name)
    }
}

/// What [`crate::Db::cancel_workflow`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowCancel {
    /// It was running: its waiting steps were cancelled, its ready ones dequeued, and its
    /// running ones asked to stop.
    Cancelled,
    /// It had finished already (or was cancelled before): nothing changed.
    Finished,
    /// No workflow has this id.
    NotFound,
}
