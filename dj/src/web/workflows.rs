//! Workflows on the dashboard: the recent ones (`/workflows`), one with its steps
//! (`/workflows/{id}`), and cancelling or retrying it (`POST /workflows/{id}/{action}`, the
//! `Db` calls `worker workflow --cancel` and `--retry` make), behind the same CSRF token,
//! origin and read-only checks as every other action, and logged with who made it.

use std::sync::Arc;

use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::StatusCode;
use minijinja::context;

use super::pages::{check_csrf, db, refuse, render, see, ActionForm, JobQuery, Page};
use super::{App, Who};
use crate::model::{WorkflowCancel, WorkflowInfo};
use crate::time::rfc3339;

/// How many workflows the list shows, newest first.
const LISTED: i64 = 100;

fn summary(info: &WorkflowInfo) -> minijinja::Value {
    context! {
        id => info.id,
        name => info.name,
        state => state_name(info),
        steps => info.steps.len(),
        pending => info.pending,
        failed => info.failed,
        created_at => rfc3339(info.created_at),
        finished_at => info.finished_at.map(rfc3339),
    }
}

fn state_name(info: &WorkflowInfo) -> String {
    serde_json::to_value(info.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(super) async fn workflows(State(app): State<Arc<App>>) -> Page {
    let (now, list) = db(&app, |db| Ok((db.now()?, db.workflows(LISTED)?))).await?;
    let ctx = context! {
        title => "workflows",
        workflows => list.iter().map(summary).collect::<Vec<_>>(),
        now => rfc3339(now),
    };
    render(&app, "workflows.html", ctx)
}

pub(super) async fn workflow(
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
    Query(query): Query<JobQuery>,
) -> Page {
    let (now, info) = db(&app, move |db| Ok((db.now()?, db.workflow(id)?))).await?;
    let Some(info) = info else {
        return Err(refuse(
            &app,
            StatusCode::NOT_FOUND,
            &format!("no workflow {id}: it was pruned, or never existed"),
        ));
    };
    let steps: Vec<_> = (info.steps.iter())
        .map(|s| {
            context! {
                name => s.name,
                job_id => s.job_id,
                state => serde_json::to_value(s.state).ok(),
                after => s.after.join(", "),
                waiting_on => s.waiting_on,
                runs => s.runs.as_str(),
                cancelled_by => s.cancelled_by,
            }
        })
        .collect();
    let ctx = context! {
        title => format!("workflow {id}"),
        workflow => summary(&info),
        steps => steps,
        notice => query.notice,
        now => rfc3339(now),
    };
    render(&app, "workflow.html", ctx)
}

pub(super) async fn workflow_action(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Who>,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<ActionForm>,
) -> Page {
    check_csrf(&app, form.csrf())?;
    let verb = action.clone();
    let done = db(&app, move |db| {
        Ok(match verb.as_str() {
            "cancel" => Some(match db.cancel_workflow(id)? {
                WorkflowCancel::Cancelled => "cancelled".to_owned(),
                WorkflowCancel::Finished => "not cancelled: it had finished".to_owned(),
                WorkflowCancel::NotFound => "no such workflow".to_owned(),
            }),
            "retry" => Some(match db.retry_workflow(id)? {
                Some(n) => format!("retried: {n} step(s) to run again"),
                None => "no such workflow".to_owned(),
            }),
            _ => None,
        })
    })
    .await?;
    let Some(notice) = done else {
        return Err(refuse(
            &app,
            StatusCode::NOT_FOUND,
            &format!("no action `{action}`; a workflow offers cancel and retry"),
        ));
    };
    tracing::info!(target: "dj::web", "{} did {action} on workflow {id}: {notice}", who.0);
    Ok(see(&app, &format!("/workflows/{id}?"), &notice))
}
