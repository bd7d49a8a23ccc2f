//! A worker state holding a real `sqlx::PgPool`, and jobs that share it: what an axum + sqlx
//! app's worker does. The pool's table is `pool_items (n, pid)`: each job inserts its `n` with
//! the server process (`pg_backend_pid()`) of the connection it got, so a test can count the
//! connections every job went through.

use dj::{Context, Setup, State};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// The most connections the pool opens.
pub const MAX_CONNECTIONS: u32 = 3;

/// The table the jobs write, for a test to create.
pub const CREATE_TABLE: &str = "CREATE TABLE pool_items (n bigint NOT NULL, pid int NOT NULL)";

/// The async state function of `dj-pool-worker`: connects the pool to the URL dj resolved,
/// inside the worker's runtime, and checks the application's table as an app would at start
/// (so that a worker without it does not start).
pub async fn pool_state(setup: Setup) -> Result<State, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect(setup.database_url())
        .await?;
    sqlx::query("SELECT n, pid FROM pool_items LIMIT 0")
        .execute(&pool)
        .await?;
    Ok(State::new().with(pool))
}

/// The state function of `dj-lazy-pool-worker`, written as programs were before dj had
/// async state functions: sync, reading `DATABASE_URL` itself, with `connect_lazy` (which
/// spawns the pool's tasks, so it needs a tokio runtime around it).
pub fn lazy_pool_state() -> State {
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect_lazy(&dj::database_url(None))
        .expect("DATABASE_URL is a postgres:// URL");
    State::new().with(pool)
}

/// The insert every pool job makes; `pg_sleep` keeps the connection a moment, so that jobs
/// running at once need several.
const INSERT: &str =
    "INSERT INTO pool_items (n, pid) SELECT $1, pg_backend_pid() FROM pg_sleep(0.01)";

/// An async job on the worker's pool.
#[dj::job]
pub async fn pool_insert(ctx: &Context, n: i64) -> Result<(), sqlx::Error> {
    let pool = ctx.state::<PgPool>();
    sqlx::query(INSERT).bind(n).execute(pool).await?;
    Ok(())
}

/// A sync job on the same pool: it runs with the worker's runtime entered, and blocks its
/// executor thread on the query.
#[dj::job]
pub fn pool_insert_sync(ctx: &Context, n: i64) -> Result<(), sqlx::Error> {
    let pool = ctx.state::<PgPool>();
    tokio::runtime::Handle::current().block_on(sqlx::query(INSERT).bind(n).execute(pool))?;
    Ok(())
}

/// A transactional job on the worker's pool: records `perform KEY` (outside the
/// transaction), then in a transaction of a pooled connection inserts `KEY` into `effects`
/// (holding the connection `millis`) and completes its row there.
#[dj::job(transactional = true)]
pub async fn pool_deposit(
    ctx: &Context,
    log: String,
    key: String,
    millis: u64,
) -> Result<(), dj::JobError> {
    crate::support::record(&log, &format!("perform {key}"));
    let pool = ctx.state::<PgPool>();
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO effects (effect) SELECT $1 FROM pg_sleep($2)")
        .bind(&key)
        .bind(millis as f64 / 1000.0)
        .execute(&mut *tx)
        .await?;
    ctx.complete_in_async(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}
