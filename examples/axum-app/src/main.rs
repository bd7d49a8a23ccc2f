//! The server: creates the `users` table if it is missing, migrates dj's table, and serves
//! the app on 127.0.0.1:PORT (default 3000).
//!
//! DATABASE_URL=postgres://localhost/app cargo run -p dj-axum-app

use std::error::Error;

use sqlx::PgPool;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL to a postgres:// URL")?;
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse().map_err(|e| format!("PORT `{port}`: {e}"))?,
        Err(_) => 3000,
    };
    let pool = PgPool::connect(&url).await?;
    let db = dj::Db::open(&url)?;
    dj_axum_app::prepare_database(&pool, &db).await?;

    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, dj_axum_app::app(pool, db)).await?;
    Ok(())
}
