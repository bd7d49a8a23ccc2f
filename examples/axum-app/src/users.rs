//! The application's own table and the signup transaction: a user's row and the user's
//! welcome job are written together, or neither is.

use dj::Job;
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};

use crate::welcome::SendWelcome;

/// The `users` table; `welcomed_at` is set by the welcome job.
const CREATE_USERS: &str = "CREATE TABLE IF NOT EXISTS users (\
                            id bigserial PRIMARY KEY, \
                            email text UNIQUE NOT NULL, \
                            welcomed_at timestamptz)";

/// What can stop the server from preparing its database.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("could not create the users table: {0}")]
    Users(#[source] sqlx::Error),
    #[error("could not migrate the delayed_jobs table: {0}")]
    Jobs(#[source] dj::Error),
}

/// Creates the `users` table if it is missing and migrates dj's `delayed_jobs` table (on
/// tokio's blocking threads, since [`dj::Db`] blocks): what the server runs at start.
pub async fn prepare_database(pool: &PgPool, db: &dj::Db) -> Result<(), SetupError> {
    sqlx::query(CREATE_USERS)
        .execute(pool)
        .await
        .map_err(SetupError::Users)?;
    let db = db.clone();
    tokio::task::spawn_blocking(move || db.migrate())
        .await
        .expect("the migration panicked")
        .map_err(SetupError::Jobs)?;
    Ok(())
}

/// A user who signed up: the new row's id and the id of the user's welcome job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Signup {
    pub id: i64,
    pub job: dj::JobId,
}

/// Why a signup did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("`{0}` is not an email address: it has no `@`")]
    InvalidEmail(String),
    #[error("`{0}` has already signed up")]
    EmailTaken(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("could not enqueue the welcome job: {0}")]
    Enqueue(#[from] dj::Error),
}

/// Inserts the user and enqueues the welcome job, both inside `tx`: they exist once the
/// caller commits `tx`, and dropping `tx` instead (as on an error) rolls both back.
pub async fn sign_up(
    tx: &mut Transaction<'_, Postgres>,
    email: &str,
) -> Result<Signup, SignupError> {
    if !email.contains('@') {
        return Err(SignupError::InvalidEmail(email.to_owned()));
    }
    let id: i64 = sqlx::query_scalar("INSERT INTO users (email) VALUES ($1) RETURNING id")
        .bind(email)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                SignupError::EmailTaken(email.to_owned())
            }
            e => SignupError::Database(e),
        })?;
    let job = SendWelcome { user_id: id }
        .delay()
        .enqueue_async(&mut *tx)
        .await?;
    Ok(Signup { id, job })
}
