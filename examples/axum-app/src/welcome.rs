//! The welcome job, and the state through which a worker gives it the application's
//! database: one `PgPool`, shared by every job the worker runs.

use dj::{Context, JobError, Message};
use sqlx::PgPool;

/// The worker's state: a pool on the database dj works (`--database-url`, else
/// `DATABASE_URL`), where the `users` table lives too.
///
/// dj calls it inside the tokio runtime its async jobs run on, before the first job, so the
/// pool's connections and tasks belong to that runtime. An error (the database does not
/// answer, the URL is not a `postgres://` one) stops the worker at start, naming it.
pub async fn worker_state(setup: dj::Setup) -> Result<dj::State, sqlx::Error> {
    let pool = PgPool::connect(setup.database_url()).await?;
    Ok(dj::State::new().with(pool))
}

/// Sends the welcome mail. Here, sending is marking the user welcomed (`welcomed_at`). A
/// database error is a failed attempt, retried; a user who no longer exists fails the job
/// for good.
#[dj::job(queue = "mail", max_attempts = 5)]
pub async fn send_welcome(ctx: &Context, user_id: i64) -> Result<(), JobError> {
    let marked = sqlx::query("UPDATE users SET welcomed_at = now() WHERE id = $1")
        .bind(user_id)
        .execute(ctx.state::<PgPool>())
        .await
        .map_err(JobError::new)?
        .rows_affected();
    if marked == 0 {
        return Err(JobError::permanent(Message(format!("no user {user_id}"))));
    }
    Ok(())
}
