//! The overview's queue controls: pause and resume (a button on each queue's row), a limit on
//! running jobs and a rate limit (the forms below the table). Each is the `Db` call the CLI
//! makes (`pause`, `resume`, `limit`, `rate`), behind the same CSRF token, origin and
//! read-only checks as every other action, and logged with who made it.

use std::sync::Arc;

use axum::extract::{Extension, Form, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::pages::{check_csrf, db, refuse, see, Page};
use super::{App, Who};
use crate::model::Rate;

#[derive(Debug, Deserialize)]
pub(super) struct QueueForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    queue: String,
    /// `limit`: how many may run at once, or `none`.
    #[serde(default)]
    max_running: String,
    /// `rate`: `STARTS/PERIOD`, or `none`.
    #[serde(default)]
    rate: String,
}

/// What an action asks of the queue, parsed: a bad value is a 400 that says what to write.
enum Change {
    Pause,
    Resume,
    Limit(Option<u32>),
    Rate(Option<Rate>),
}

impl Change {
    fn of(action: &str, form: &QueueForm) -> Result<Change, String> {
        let none = |text: &str| matches!(text.trim(), "" | "none");
        Ok(match action {
            "pause" => Change::Pause,
            "resume" => Change::Resume,
            "limit" if none(&form.max_running) => Change::Limit(None),
            "limit" => match form.max_running.trim().parse::<u32>() {
                Ok(n) if n > 0 => Change::Limit(Some(n)),
                _ => {
                    return Err(format!(
                        "limit: `{}` is not a limit; write a number of jobs (e.g. 5), or none \
                         (use pause to stop a queue)",
                        form.max_running.trim()
                    ))
                }
            },
            "rate" if none(&form.rate) => Change::Rate(None),
            "rate" => Change::Rate(Some(
                form.rate
                    .trim()
                    .parse::<Rate>()
                    .map_err(|e| format!("rate: {e}"))?,
            )),
            _ => {
                return Err(format!(
                    "no queue action `{action}`; a queue offers pause, resume, limit and rate"
                ))
            }
        })
    }
}

/// `POST /queues/{action}`: pause, resume, limit or rate the form's queue, then back to the
/// overview with a notice.
pub(super) async fn queue_action(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Who>,
    Path(action): Path<String>,
    Form(form): Form<QueueForm>,
) -> Page {
    check_csrf(&app, &form.csrf)?;
    let change =
        Change::of(&action, &form).map_err(|e| refuse(&app, StatusCode::BAD_REQUEST, &e))?;
    let queue = form.queue.trim().to_owned();
    crate::validate::queue_name(Some(&queue))
        .map_err(|e| refuse(&app, StatusCode::BAD_REQUEST, &e.to_string()))?;
    let name = queue.clone();
    let notice = db(&app, move |db| {
        let q = &name;
        Ok(match change {
            Change::Pause => match db.pause_queue(q)? {
                true => format!("queue {q}: paused"),
                false => format!("queue {q}: was paused already"),
            },
            Change::Resume => match db.resume_queue(q)? {
                true => format!("queue {q}: resumed"),
                false => format!("queue {q}: was not paused"),
            },
            Change::Limit(max) => match (max, db.limit_queue(q, max)?) {
                (Some(n), changed) => format!(
                    "queue {q}: at most {n} running{}",
                    if changed { "" } else { " (unchanged)" }
                ),
                (None, true) => format!("queue {q}: limit removed"),
                (None, false) => format!("queue {q}: had no limit"),
            },
            Change::Rate(rate) => match (rate, db.rate_limit_queue(q, rate)?) {
                (Some(rate), changed) => format!(
                    "queue {q}: at most {rate} starts{}",
                    if changed { "" } else { " (unchanged)" }
                ),
                (None, true) => format!("queue {q}: rate limit removed"),
                (None, false) => format!("queue {q}: had no rate limit"),
            },
        })
    })
    .await?;
    tracing::info!(target: "dj::web", "{} did {action} on queue {queue}: {notice}", who.0);
    Ok(see(&app, "/?", &notice))
}
