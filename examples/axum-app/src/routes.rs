//! The HTTP side: `POST /signup` and `GET /jobs`, and the status each failure answers.

use std::fmt::Display;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::users::{sign_up, Signup, SignupError};

/// The most jobs `GET /jobs` lists, oldest first.
const JOBS_LIMIT: i64 = 100;

#[derive(Debug, Clone)]
struct AppState {
    pool: PgPool,
    db: dj::Db,
}

/// The service: `POST /signup` with `{"email": ".."}` answers 201 `{"id": N, "job": ID}`,
/// 422 for an invalid email and 409 for one already signed up; `GET /jobs` lists the queue.
/// The users are in `pool`'s database, the jobs in `db`'s (the same one, so that a signup
/// and its job commit together).
pub fn app(pool: PgPool, db: dj::Db) -> Router {
    Router::new()
        .route("/signup", post(signup))
        .route("/jobs", get(jobs))
        .with_state(AppState { pool, db })
}

#[derive(Debug, Deserialize)]
struct SignupRequest {
    email: String,
}

async fn signup(
    State(app): State<AppState>,
    Json(request): Json<SignupRequest>,
) -> Result<(StatusCode, Json<Signup>), SignupError> {
    let mut tx = app.pool.begin().await?;
    // On an error `tx` is dropped here, which rolls back the user and the job alike.
    let signup = sign_up(&mut tx, &request.email).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(signup)))
}

/// One job of `GET /jobs`.
#[derive(Debug, Serialize)]
struct QueuedJob {
    id: dj::JobId,
    name: String,
    queue: Option<String>,
    attempts: i32,
    /// `ready`, `scheduled`, `running` or `failed`.
    state: &'static str,
    /// Unix seconds.
    run_at: u64,
    last_error: Option<String>,
}

impl QueuedJob {
    fn new(row: dj::JobRow, now: SystemTime) -> Self {
        QueuedJob {
            state: row.state(now).as_str(),
            run_at: row
                .run_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            id: row.id,
            name: row.name,
            queue: row.queue,
            attempts: row.attempts,
            last_error: row.last_error,
        }
    }
}

async fn jobs(State(app): State<AppState>) -> Result<Json<Vec<QueuedJob>>, Response> {
    // `dj::Db` blocks: run it on tokio's blocking threads, not on the executor's.
    match tokio::task::spawn_blocking(move || list_jobs(&app.db)).await {
        Ok(Ok(jobs)) => Ok(Json(jobs)),
        Ok(Err(e)) => Err(internal_error("GET /jobs", e)),
        Err(e) => Err(internal_error("GET /jobs", e)),
    }
}

/// The first [`JOBS_LIMIT`] jobs, with their states by the database's clock.
fn list_jobs(db: &dj::Db) -> dj::Result<Vec<QueuedJob>> {
    let now = db.now()?;
    let filter = dj::JobFilter {
        limit: Some(JOBS_LIMIT),
        ..dj::JobFilter::default()
    };
    let rows = db.jobs(&filter)?;
    Ok(rows
        .into_iter()
        .map(|row| QueuedJob::new(row, now))
        .collect())
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
}

impl IntoResponse for SignupError {
    fn into_response(self) -> Response {
        let status = match self {
            SignupError::InvalidEmail(_) => StatusCode::UNPROCESSABLE_ENTITY,
            SignupError::EmailTaken(_) => StatusCode::CONFLICT,
            SignupError::Database(_) | SignupError::Enqueue(_) => {
                return internal_error("POST /signup", self)
            }
        };
        let error = self.to_string();
        (status, Json(ErrorBody { error })).into_response()
    }
}

/// A 500 that tells the client nothing of the database; the details go to stderr.
fn internal_error(route: &str, error: impl Display) -> Response {
    eprintln!("{route}: {error}");
    let error = "internal error".to_owned();
    (StatusCode::INTERNAL_SERVER_ERROR, Json(ErrorBody { error })).into_response()
}
