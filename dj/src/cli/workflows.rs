//! `workflow ID`: a workflow's state and its steps', and `--cancel` / `--retry` on it.

use std::process::ExitCode;

use super::args::WorkflowArgs;
use super::output::json;
use crate::db::Db;
use crate::error::Result;
use crate::model::{StepRuns, StepState, WorkflowCancel, WorkflowInfo};

pub(super) fn workflow(db: &Db, args: &WorkflowArgs) -> Result<ExitCode> {
    let mut did = None;
    if args.cancel {
        did = Some(match db.cancel_workflow(args.id)? {
            WorkflowCancel::Cancelled => "cancelled".to_owned(),
            WorkflowCancel::Finished => "not cancelled: it had finished".to_owned(),
            WorkflowCancel::NotFound => String::new(),
        });
    }
    if args.retry {
        did = db
            .retry_workflow(args.id)?
            .map(|n| format!("retried: {n} step(s) to run again"));
    }
    let Some(info) = db.workflow(args.id)? else {
        if args.json {
            json(serde_json::json!({ "workflow": null }));
        } else {
            println!("No workflow {}", args.id);
        }
        return Ok(ExitCode::FAILURE);
    };
    if args.json {
        json(serde_json::json!({ "workflow": info, "action": did }));
    } else {
        if let Some(did) = did {
            println!("Workflow {}: {did}", args.id);
        }
        print(&info);
    }
    Ok(ExitCode::SUCCESS)
}

/// A header line, then one line per step: name, job id, state, and what it runs after.
fn print(info: &WorkflowInfo) {
    let total = info.steps.len();
    println!(
        "Workflow {} \"{}\": {:?}, {} of {total} step(s) pending, {} failed or cancelled",
        info.id, info.name, info.state, info.pending, info.failed
    );
    let width = (info.steps.iter().map(|s| s.name.len()))
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "  {:<width$}  {:>10}  {:<10}  after",
        "step", "job", "state"
    );
    for step in &info.steps {
        let mut after = step.after.join(", ");
        if step.state == StepState::Waiting {
            after.push_str(&format!(" (waiting on {})", step.waiting_on));
        }
        match step.runs {
            StepRuns::Succeeded => {}
            StepRuns::Finished => after.push_str(" [runs anyway]"),
            StepRuns::Failed => after.push_str(" [runs only if one failed]"),
        }
        if let Some(by) = &step.cancelled_by {
            after.push_str(&format!(" [cancelled: `{by}` failed]"));
        }
        let state = serde_json::to_value(step.state).expect("a state serializes");
        println!(
            "  {:<width$}  {:>10}  {:<10}  {after}",
            step.name,
            step.job_id,
            state.as_str().unwrap_or_default()
        );
    }
}
