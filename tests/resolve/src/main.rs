//! Opens one in-memory SQLite database through each of dj (rusqlite), sqlx and diesel, and
//! asks each for the SQLite version it linked: one library, so one answer.

use diesel::{Connection as _, RunQueryDsl as _};
use sqlx::Connection as _;

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    v: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("dj-resolve-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display()))?;
    db.migrate()?;
    let mut sqlx = sqlx::SqliteConnection::connect("sqlite::memory:").await?;
    let from_sqlx: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&mut sqlx)
        .await?;
    let mut diesel = diesel::SqliteConnection::establish(":memory:")?;
    let from_diesel = diesel::sql_query("SELECT sqlite_version() AS v")
        .get_result::<Version>(&mut diesel)?
        .v;
    std::fs::remove_dir_all(&dir)?;
    println!("SQLite {from_sqlx} (sqlx), {from_diesel} (diesel), dj's table migrated");
    if from_sqlx != from_diesel {
        return Err(format!("two SQLite libraries: {from_sqlx} and {from_diesel}").into());
    }
    Ok(())
}
