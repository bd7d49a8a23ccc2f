//! Batches: a group of jobs, possibly added to over time, with callbacks that fire once the
//! group is done: on success (every job succeeded), on complete (every job finished, however)
//! and on discard (every job finished, and one or more failed for good). A batch is a
//! workflow whose callbacks are steps after all of its jobs, so each callback fires exactly
//! once across the cluster by the same rule: it is released in the transaction that finishes
//! the batch's last job, and the transactions finishing one batch's jobs take its row in turn.

use crate::db::Db;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::model::{
    Delayed, JobId, NewJob, NewStep, NewWorkflow, StepRuns, WorkflowId, BATCH_CALLBACKS,
};

/// The callback steps' names, and when each runs.
const CALLBACKS: [(&str, StepRuns); 3] = [
    (BATCH_CALLBACKS[0], StepRuns::Succeeded),
    (BATCH_CALLBACKS[1], StepRuns::Finished),
    (BATCH_CALLBACKS[2], StepRuns::Failed),
];

/// A batch being built: its jobs and its callbacks.
///
/// ```
/// use dj::{Batch, Context, Job, Perform};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Job, Serialize, Deserialize)]
/// struct ImportRow { row: u32 }
/// # impl Perform for ImportRow {
/// #     type Error = std::io::Error;
/// #     fn perform(&self, _: &Context) -> Result<(), Self::Error> { Ok(()) }
/// # }
///
/// #[derive(Job, Serialize, Deserialize)]
/// struct ImportDone { file: String }
/// # impl Perform for ImportDone {
/// #     type Error = std::io::Error;
/// #     fn perform(&self, _: &Context) -> Result<(), Self::Error> { Ok(()) }
/// # }
///
/// # fn main() -> Result<(), dj::Error> {
/// # let dir = std::env::temp_dir().join(format!("dj-doc-batch-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display()))?;
/// # db.migrate()?;
/// let mut batch = Batch::new("import rows.csv");
/// for row in 0..100 {
///     batch.add(ImportRow { row });
/// }
/// batch.on_success(ImportDone { file: "rows.csv".into() });
/// let run = batch.enqueue(&db)?;
/// db.add_to_batch(run.id, (100..120).map(|row| ImportRow { row }))?;  // while it is open
///
/// let report = dj::Worker::new(db.clone()).work_off(1_000)?;
/// assert_eq!(report.succeeded, 121);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Batch {
    name: String,
    jobs: Vec<Result<NewJob>>,
    callbacks: [Option<Result<NewJob>>; 3],
}

/// What an enqueued batch is: its id (a workflow's, for [`Db::workflow`] and
/// [`Db::cancel_workflow`]) and its jobs' ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRun {
    /// The batch's id.
    pub id: WorkflowId,
    /// Its jobs' ids, in the order they were added.
    pub jobs: Vec<JobId>,
}

impl Batch {
    /// An empty batch; `name` is for people (the dashboard, `worker workflow`).
    pub fn new(name: impl Into<String>) -> Self {
        Batch {
            name: name.into(),
            jobs: Vec::new(),
            callbacks: [None, None, None],
        }
    }

    /// Adds a job (a value or its [`Delayed`] builder).
    pub fn add<J: Job>(&mut self, job: impl Into<Delayed<J>>) -> &mut Self {
        self.jobs.push(job.into().into_row());
        self
    }

    /// The job enqueued once every job of the batch has succeeded (never, if one fails for
    /// good).
    pub fn on_success<J: Job>(&mut self, job: impl Into<Delayed<J>>) -> &mut Self {
        self.callbacks[0] = Some(job.into().into_row());
        self
    }

    /// The job enqueued once every job of the batch has finished, whether it succeeded or
    /// failed for good.
    pub fn on_complete<J: Job>(&mut self, job: impl Into<Delayed<J>>) -> &mut Self {
        self.callbacks[1] = Some(job.into().into_row());
        self
    }

    /// The job enqueued once every job of the batch has finished, if one or more failed for
    /// good (or were cancelled).
    pub fn on_discard<J: Job>(&mut self, job: impl Into<Delayed<J>>) -> &mut Self {
        self.callbacks[2] = Some(job.into().into_row());
        self
    }

    /// Inserts the batch, all or none, in one transaction; returns its id and its jobs' ids.
    /// Refused before anything is written: no jobs, or a unique job among them.
    pub fn enqueue(self, db: &Db) -> Result<BatchRun> {
        let name = self.name.clone();
        let count = self.jobs.len();
        if count == 0 {
            return Err(Error::Invalid(format!(
                "batch `{name}` has no jobs; add one with `Batch::add`"
            )));
        }
        let mut steps = member_steps(&name, self.jobs, 0)?;
        for ((callback, runs), job) in CALLBACKS.into_iter().zip(self.callbacks) {
            if let Some(row) = job {
                steps.push(NewStep {
                    name: callback.to_owned(),
                    row: checked(&name, callback, row)?,
                    after: (0..count).collect(),
                    runs,
                });
            }
        }
        let run = db.store().workflow_insert(&NewWorkflow {
            name,
            steps,
            batch: true,
        })?;
        Ok(BatchRun {
            id: run.id,
            jobs: run
                .steps
                .into_iter()
                .take(count)
                .map(|(_, id)| id)
                .collect(),
        })
    }
}

/// Steps `job-N` for `jobs`, numbered from `first + 1`.
fn member_steps(batch: &str, jobs: Vec<Result<NewJob>>, first: usize) -> Result<Vec<NewStep>> {
    (jobs.into_iter().enumerate())
        .map(|(i, row)| {
            let name = format!("job-{}", first + i + 1);
            Ok(NewStep {
                row: checked(batch, &name, row)?,
                name,
                after: Vec::new(),
                runs: StepRuns::Succeeded,
            })
        })
        .collect()
}

/// A batch's row, or why it cannot be one.
fn checked(batch: &str, step: &str, row: Result<NewJob>) -> Result<NewJob> {
    let row = row.map_err(|e| Error::Invalid(format!("batch `{batch}`, {step}: {e}")))?;
    if row.unique.is_some() {
        return Err(Error::Invalid(format!(
            "batch `{batch}`, {step}: a unique job cannot be in a batch (a duplicate would \
             never finish); enqueue it without `unique`"
        )));
    }
    Ok(row)
}

impl Db {
    /// Adds `jobs` to batch `id`, in one transaction, while it is open: until its callbacks
    /// have fired (a batch without callbacks, until its jobs have all finished). The
    /// callbacks then wait for these too. Returns their ids. A batch that has finished (or
    /// was cancelled) refuses them with [`Error::Invalid`]: start a new one.
    pub fn add_to_batch<I, J>(&self, id: WorkflowId, jobs: I) -> Result<Vec<JobId>>
    where
        I: IntoIterator,
        I::Item: Into<Delayed<J>>,
        J: Job,
    {
        let rows: Vec<Result<NewJob>> = (jobs.into_iter())
            .map(|job| job.into().into_row())
            .collect();
        let rows = (rows.into_iter())
            .map(|row| checked(&format!("{id}"), "an added job", row))
            .collect::<Result<Vec<NewJob>>>()?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.store().batch_add(id, &rows)
    }
}
