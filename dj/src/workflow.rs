//! Workflows: jobs enqueued together, some running only after others have succeeded (a
//! DAG: fan-out, fan-in, diamonds). [`Workflow`] builds one and checks it (names, unknown
//! dependencies, cycles) before anything is written; [`Db::workflow`] reads its state and
//! [`Db::cancel_workflow`] stops it.
//!
//! Steps wait in the database, not in memory: a step whose dependencies have not finished
//! is held in `dj_held_jobs` and moves into `delayed_jobs` in the transaction that finishes
//! its last dependency (migration 0020's triggers), so any worker on any host runs any step,
//! and a crash loses no link between them.

use std::collections::HashMap;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::model::{
    Delayed, NewJob, NewStep, NewWorkflow, StepRuns, WorkflowCancel, WorkflowId, WorkflowInfo,
    WorkflowRun, WorkflowState,
};

/// A workflow being built: named steps, each a job, each running after the steps it names.
///
/// ```
/// use dj::{Context, Job, Perform, Workflow};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Job, Serialize, Deserialize)]
/// struct Fetch { url: String }
/// # impl Perform for Fetch {
/// #     type Error = std::io::Error;
/// #     fn perform(&self, _: &Context) -> Result<(), Self::Error> { Ok(()) }
/// # }
///
/// #[derive(Job, Serialize, Deserialize)]
/// struct Transform { part: u32 }
/// # impl Perform for Transform {
/// #     type Error = std::io::Error;
/// #     fn perform(&self, _: &Context) -> Result<(), Self::Error> { Ok(()) }
/// # }
///
/// #[derive(Job, Serialize, Deserialize)]
/// struct Report;
/// # impl Perform for Report {
/// #     type Error = std::io::Error;
/// #     fn perform(&self, _: &Context) -> Result<(), Self::Error> { Ok(()) }
/// # }
///
/// # fn main() -> Result<(), dj::Error> {
/// # let dir = std::env::temp_dir().join(format!("dj-doc-workflow-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display()))?;
/// # db.migrate()?;
/// let mut workflow = Workflow::new("nightly report");
/// workflow.step("fetch", Fetch { url: "https://example.com/feed".into() });
/// for part in 0..3 {
///     workflow.step(format!("transform-{part}"), Transform { part }).after(["fetch"]);
/// }
/// workflow
///     .step("report", Report.delay().queue("reports"))
///     .after((0..3).map(|part| format!("transform-{part}")))
///     .run_anyway();
/// let run = workflow.enqueue(&db)?;
///
/// let report = dj::Worker::new(db.clone()).work_off(100)?;
/// assert_eq!(report.succeeded, 5);
/// assert_eq!(db.workflow(run.id)?.unwrap().state, dj::WorkflowState::Succeeded);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Workflow {
    name: String,
    steps: Vec<WorkflowStep>,
}

/// One step of a [`Workflow`], as [`Workflow::step`] returns it to say what it runs after.
#[derive(Debug)]
pub struct WorkflowStep {
    name: String,
    row: Result<NewJob>,
    after: Vec<String>,
    runs: StepRuns,
}

impl WorkflowStep {
    /// The steps this one runs after: it starts once all of them have succeeded (or, with
    /// [`WorkflowStep::run_anyway`], finished). Names may come before or after this step's;
    /// they are checked at enqueue.
    pub fn after<I>(&mut self, steps: I) -> &mut Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.after.extend(steps.into_iter().map(Into::into));
        self
    }

    /// Runs this step even if a dependency failed for good or was cancelled (a report or a
    /// clean-up), once every dependency has finished. Without it, a dependency's failure
    /// cancels this step and the steps after it.
    pub fn run_anyway(&mut self) -> &mut Self {
        self.runs = StepRuns::Finished;
        self
    }

    /// Runs this step once every dependency has finished, only if one of them failed for
    /// good or was cancelled (an alert, a compensation: a batch's on-discard callback); if
    /// all succeeded, it is skipped. A failure does not cancel it.
    pub fn only_if_failed(&mut self) -> &mut Self {
        self.runs = StepRuns::Failed;
        self
    }
}

impl Workflow {
    /// An empty workflow; `name` is for people (the dashboard, `worker workflow`).
    pub fn new(name: impl Into<String>) -> Self {
        Workflow {
            name: name.into(),
            steps: Vec::new(),
        }
    }

    /// Adds step `name`: `job`, a job value or its [`Delayed`] builder (queue, priority,
    /// run time, keys). With no [`WorkflowStep::after`], it is ready at once.
    pub fn step<J: Job>(
        &mut self,
        name: impl Into<String>,
        job: impl Into<Delayed<J>>,
    ) -> &mut WorkflowStep {
        self.steps.push(WorkflowStep {
            name: name.into(),
            row: job.into().into_row(),
            after: Vec::new(),
            runs: StepRuns::Succeeded,
        });
        self.steps.last_mut().expect("a step was just added")
    }

    /// Checks the workflow and inserts it, all or none, in one transaction; returns its id
    /// and its steps' job ids. Refused before anything is written: no steps, a step name
    /// given twice, a dependency on a step the workflow lacks, a cycle, a unique job as a
    /// step. In `dj::testing`'s inline mode, its steps are performed at once in dependency
    /// order (a failed step's dependants are skipped unless they run anyway).
    pub fn enqueue(self, db: &Db) -> Result<WorkflowRun> {
        let workflow = self.check()?;
        if let Some(perform) = crate::enqueue::inline_runner() {
            return Ok(perform_inline(&workflow, perform, db));
        }
        db.store().workflow_insert(&workflow)
    }

    /// [`Workflow::enqueue`] without blocking the async executor.
    #[cfg(feature = "tokio")]
    pub async fn enqueue_async(self, db: &Db) -> Result<WorkflowRun> {
        let workflow = self.check()?;
        if let Some(perform) = crate::enqueue::inline_runner() {
            return Ok(perform_inline(&workflow, perform, db));
        }
        let db = db.clone();
        let insert = move || db.store().workflow_insert(&workflow);
        (crate::io::handle().spawn_blocking(insert).await)
            .map_err(|e| Error::Invalid(format!("inserting the workflow failed: {e}")))?
    }

    /// The rows, and each step's dependencies as positions; or the first thing wrong.
    fn check(self) -> Result<NewWorkflow> {
        let name = self.name;
        let refuse = |why: String| Err(Error::Invalid(format!("workflow `{name}`: {why}")));
        if self.steps.is_empty() {
            return refuse("it has no steps; add one with `Workflow::step`".into());
        }
        let mut position = HashMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            if step.name.is_empty() {
                return refuse(format!("step {} has an empty name; name every step", i + 1));
            }
            if position.insert(step.name.as_str(), i).is_some() {
                return refuse(format!(
                    "two steps are named `{}`; give each step its own name",
                    step.name
                ));
            }
        }
        let mut links = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let mut after = Vec::new();
            for dep in &step.after {
                let Some(&i) = position.get(dep.as_str()) else {
                    return refuse(format!(
                        "step `{}` runs after `{dep}`, which is not a step of it; its steps are {}",
                        step.name,
                        listed(self.steps.iter().map(|s| s.name.as_str()))
                    ));
                };
                if !after.contains(&i) {
                    after.push(i);
                }
            }
            links.push(after);
        }
        if let Some(cycle) = find_cycle(&links) {
            let path: Vec<&str> = cycle.iter().map(|&i| self.steps[i].name.as_str()).collect();
            return refuse(format!(
                "its steps wait on each other in a cycle ({}), so none of them could start; \
                 remove one of those dependencies",
                path.join(" → ")
            ));
        }
        let mut steps = Vec::with_capacity(self.steps.len());
        for (step, after) in self.steps.into_iter().zip(links) {
            let row = match step.row {
                Ok(row) => row,
                Err(e) => return refuse(format!("step `{}`: {e}", step.name)),
            };
            if row.unique.is_some() {
                return refuse(format!(
                    "step `{}` is a unique job; a workflow's steps cannot be unique (a \
                     duplicate would leave the steps after it waiting): enqueue it without \
                     `unique`",
                    step.name
                ));
            }
            steps.push(NewStep {
                name: step.name,
                row,
                after,
                runs: step.runs,
            });
        }
        Ok(NewWorkflow {
            name,
            steps,
            batch: false,
        })
    }
}

/// Names for a message, the first ten.
fn listed<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    match names.len() {
        0..=10 => names.join(", "),
        n => format!("{} and {} more", names[..10].join(", "), n - 10),
    }
}

/// The steps in an order where each comes after its dependencies (Kahn's), and the steps
/// left out of it: those on a cycle or waiting behind one.
fn dependency_order(links: &[Vec<usize>]) -> (Vec<usize>, Vec<bool>) {
    let mut waiting: Vec<usize> = links.iter().map(Vec::len).collect();
    let mut dependants = vec![Vec::new(); links.len()];
    for (step, after) in links.iter().enumerate() {
        for &dep in after {
            dependants[dep].push(step);
        }
    }
    let mut order: Vec<usize> = (0..links.len()).filter(|&i| waiting[i] == 0).collect();
    let mut next = 0;
    while next < order.len() {
        for &d in &dependants[order[next]] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                order.push(d);
            }
        }
        next += 1;
    }
    let left = waiting.iter().map(|&w| w > 0).collect();
    (order, left)
}

/// A cycle, as the steps along it with the first repeated at the end, if there is one.
/// Every step left out of the dependency order has a dependency also left out, so a walk
/// along such dependencies comes back to a step it passed: the cycle.
fn find_cycle(links: &[Vec<usize>]) -> Option<Vec<usize>> {
    let (_, left) = dependency_order(links);
    let mut at = left.iter().position(|&l| l)?;
    let mut path: Vec<usize> = Vec::new();
    loop {
        if let Some(i) = path.iter().position(|&p| p == at) {
            let mut cycle = path[i..].to_vec();
            cycle.push(at);
            // The walk went from each step to one it waits on; read it the other way.
            cycle.reverse();
            return Some(cycle);
        }
        path.push(at);
        at = *links[at].iter().find(|&&d| left[d])?;
    }
}

/// `dj::testing`'s inline mode: each step performed at once, in dependency order; a step
/// whose dependency failed (or was skipped) is skipped unless it runs anyway.
fn perform_inline(
    workflow: &NewWorkflow,
    perform: crate::enqueue::InlineRunner,
    db: &Db,
) -> WorkflowRun {
    let links: Vec<Vec<usize>> = workflow.steps.iter().map(|s| s.after.clone()).collect();
    let (order, _) = dependency_order(&links);
    let mut ok = vec![false; links.len()];
    for i in order {
        let step = &workflow.steps[i];
        let failed = step.after.iter().any(|&d| !ok[d]);
        let runs = match step.runs {
            StepRuns::Succeeded => !failed,
            StepRuns::Finished => true,
            StepRuns::Failed => failed,
        };
        if runs {
            ok[i] = perform(&step.row, Some(db.clone())).is_ok();
        }
    }
    WorkflowRun {
        id: 0,
        steps: (workflow.steps.iter())
            .map(|s| (s.name.clone(), 0))
            .collect(),
    }
}

impl Db {
    /// Workflow `id` with its steps: one read of its state, counts and each step's.
    pub fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowInfo>> {
        self.store().workflow_get(id)
    }

    /// The newest `limit` workflows, newest first, without their steps (their counts only):
    /// what the dashboard lists. Finished ones stay until the workers' `result_retention`.
    pub fn workflows(&self, limit: i64) -> Result<Vec<WorkflowInfo>> {
        self.store().workflow_list(limit)
    }

    /// How many workflows (batches included) are in each state, finished ones until the
    /// workers' `result_retention` prunes them: what `/metrics` reports as `dj_workflows`.
    pub fn workflow_counts(&self) -> Result<Vec<(WorkflowState, i64)>> {
        self.store().workflow_counts()
    }

    /// Cancels workflow `id`: its waiting steps are cancelled, its ready ones dequeued (they
    /// fail for good as "cancelled"), and its running ones asked to stop
    /// ([`crate::Context::is_cancelled`]). A step already running may still finish.
    pub fn cancel_workflow(&self, id: WorkflowId) -> Result<WorkflowCancel> {
        let (outcome, ready) = self.store().workflow_cancel(id)?;
        for job in ready {
            self.cancel(job)?;
        }
        Ok(outcome)
    }

    /// Runs workflow `id`'s unsuccessful steps again: its failed steps are retried (attempts
    /// reset) and its cancelled steps wait again on their dependencies, in one transaction;
    /// the workflow is running again. Returns how many steps that concerned (`None`: no such
    /// workflow). A step whose row is gone (deleted, or destroyed on failure) stays failed.
    pub fn retry_workflow(&self, id: WorkflowId) -> Result<Option<u64>> {
        self.store().workflow_retry(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diamond_is_ordered_and_a_cycle_is_found_with_its_path() {
        // 0 → 1, 0 → 2, 1 → 3, 2 → 3
        let diamond = vec![vec![], vec![0], vec![0], vec![1, 2]];
        let (order, left) = dependency_order(&diamond);
        assert!(!left.contains(&true));
        assert_eq!(order[0], 0);
        assert_eq!(order[3], 3);
        assert_eq!(find_cycle(&diamond), None);

        // 0 → 1 → 2 → 1 (1 and 2 wait on each other), 3 after 2.
        let cyclic = vec![vec![], vec![0, 2], vec![1], vec![2]];
        let cycle = find_cycle(&cyclic).unwrap();
        assert_eq!(cycle.first(), cycle.last());
        assert!(cycle.contains(&1) && cycle.contains(&2) && !cycle.contains(&0));

        // A step after itself.
        assert_eq!(find_cycle(&[vec![0]]), Some(vec![0, 0]));
    }
}
