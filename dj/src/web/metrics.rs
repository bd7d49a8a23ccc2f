//! `GET /metrics`: the table's gauges in Prometheus' text exposition format (version 0.0.4):
//! jobs by queue and state (the states of `stats`), the oldest ready job's age per queue, and
//! the registered workers.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::App;
use crate::model::{JobState, WorkflowState};

/// A label value, escaped as the text format requires (backslash, double quote, newline).
pub(crate) fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    table_metrics(app.db.clone(), None).await
}

/// `work --metrics-bind`: this process's counts, then the table's gauges.
pub(super) async fn process_metrics(
    State(state): State<Arc<(crate::Db, Arc<super::ProcessMetrics>)>>,
) -> Response {
    table_metrics(state.0.clone(), Some(&state.1)).await
}

async fn table_metrics(db: crate::Db, process: Option<&super::ProcessMetrics>) -> Response {
    let read =
        // The registrations alone (`Db::workers` also counts each worker's locked rows, a
        // scan of the table a scrape does not need: it reports how many are alive).
        tokio::task::spawn_blocking(move || {
            let store = db.store();
            Ok::<_, crate::Error>((db.stats()?, store.worker_list()?, db.workflow_counts()?))
        })
        .await;
    let (stats, workers, workflows) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            return (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("{e}\n"),
            )
                .into_response()
        }
        Err(e) => {
            return (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("{e}\n"),
            )
                .into_response()
        }
    };
    let mut out = String::new();
    if let Some(process) = process {
        process.render(&mut out);
    }
    out.push_str("# HELP dj_jobs Jobs in the table, by queue and state (as `worker stats`).\n");
    out.push_str("# TYPE dj_jobs gauge\n");
    for q in &stats {
        let queue = label(q.queue.as_deref().unwrap_or(""));
        for state in JobState::ALL {
            let (state, n) = (state.as_str(), q.count(state));
            let _ = writeln!(out, "dj_jobs{{queue=\"{queue}\",state=\"{state}\"}} {n}");
        }
    }
    out.push_str(
        "# HELP dj_oldest_ready_age_seconds How long the oldest ready job of a queue has waited.\n",
    );
    out.push_str("# TYPE dj_oldest_ready_age_seconds gauge\n");
    for q in &stats {
        let queue = label(q.queue.as_deref().unwrap_or(""));
        let age = q.oldest_ready_age.unwrap_or(0.0);
        let _ = writeln!(
            out,
            "dj_oldest_ready_age_seconds{{queue=\"{queue}\"}} {age}"
        );
    }
    out.push_str(
        "# HELP dj_workflows Workflows by state (finished ones until the result retention prunes them).\n",
    );
    out.push_str("# TYPE dj_workflows gauge\n");
    for state in [
        WorkflowState::Running,
        WorkflowState::Succeeded,
        WorkflowState::Failed,
        WorkflowState::Cancelled,
    ] {
        let n: i64 = (workflows.iter())
            .filter(|(s, _)| *s == state)
            .map(|(_, n)| n)
            .sum();
        let name = serde_json::to_value(state).expect("a state serializes");
        let name = name.as_str().unwrap_or_default();
        let _ = writeln!(out, "dj_workflows{{state=\"{name}\"}} {n}");
    }
    out.push_str("# HELP dj_workers_alive Workers registered in dj_workers.\n");
    out.push_str("# TYPE dj_workers_alive gauge\n");
    let _ = writeln!(out, "dj_workers_alive {}", workers.len());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// `start --metrics-bind`: every worker's `/metrics`, merged.
pub(super) async fn pool_metrics(
    State(workers): State<Arc<std::sync::Mutex<Vec<u16>>>>,
) -> Response {
    let ports = workers.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let texts = tokio::task::spawn_blocking(move || {
        ports
            .iter()
            .filter_map(|&port| scrape(port).ok())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        super::merge_exposition(&texts),
    )
        .into_response()
}

/// `GET /metrics` of a worker of this pool, on loopback. Hand-written (one request to our own
/// server, HTTP/1.0, read to the end): dj has no HTTP client, and this needs none.
fn scrape(port: u16) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}
