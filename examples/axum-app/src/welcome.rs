//! The welcome job, and the state through which a worker gives it the application's
//! database.

use dj::{Context, JobError, Message};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

/// Where the welcome job finds the `users` table. The worker's [`dj::State`] holds it.
///
/// The job opens a connection of its own for each run rather than sharing a pool: a sqlx
/// pool belongs to the tokio runtime it was made on, and a worker makes its async runtime
/// when it starts working, after the state is built.
#[derive(Debug, Clone)]
pub struct UsersDb(pub PgConnectOptions);

impl UsersDb {
    /// From a `postgres://` URL (its `options=-csearch_path%3D...` included).
    pub fn from_url(url: &str) -> Result<UsersDb, sqlx::Error> {
        url.parse().map(UsersDb)
    }
}

/// The worker binary's state: [`UsersDb`] from the database dj's CLI reads, `DATABASE_URL`.
///
/// Panics, so that the worker stops at start, when that is not a PostgreSQL URL.
pub fn worker_state() -> dj::State {
    let users = UsersDb::from_url(&dj::database_url(None)).unwrap_or_else(|e| {
        panic!("the welcome job needs DATABASE_URL to be a postgres:// URL: {e}")
    });
    dj::State::new().with(users)
}

/// Sends the welcome mail. Here, sending is marking the user welcomed (`welcomed_at`). A
/// database error is a failed attempt, retried; a user who no longer exists fails the job
/// for good.
#[dj::job(queue = "mail", max_attempts = 5)]
pub async fn send_welcome(ctx: &Context, user_id: i64) -> Result<(), JobError> {
    let mut conn = PgConnection::connect_with(&ctx.state::<UsersDb>().0)
        .await
        .map_err(JobError::new)?;
    let marked = sqlx::query("UPDATE users SET welcomed_at = now() WHERE id = $1")
        .bind(user_id)
        .execute(&mut conn)
        .await
        .map_err(JobError::new)?
        .rows_affected();
    // The update is done: a failure to say goodbye to the server is not the job's.
    let _ = conn.close().await;
    if marked == 0 {
        return Err(JobError::permanent(Message(format!("no user {user_id}"))));
    }
    Ok(())
}
