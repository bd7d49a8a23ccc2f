//! `#[dj::job] async fn` and `PerformAsync` jobs, enqueued and worked off on SQLite beside a
//! sync job: each ran, with its arguments and the worker's context.

use std::sync::atomic::{AtomicI64, Ordering};

use dj::{Context, Job, PerformAsync};
use serde::{Deserialize, Serialize};

static SUM: AtomicI64 = AtomicI64::new(0);

#[dj::job(queue = "mail")]
async fn send_welcome(user_id: i64) {
    tokio::task::yield_now().await;
    SUM.fetch_add(user_id, Ordering::SeqCst);
}

#[dj::job]
async fn with_context(ctx: &dj::Context, n: i64) -> Result<(), std::io::Error> {
    assert_eq!(ctx.job().name, "with_context");
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    SUM.fetch_add(n, Ordering::SeqCst);
    Ok(())
}

#[dj::job]
fn sync_one(n: i64) {
    SUM.fetch_add(n, Ordering::SeqCst);
}

#[derive(Job, Serialize, Deserialize)]
struct Ping {
    n: i64,
}

impl PerformAsync for Ping {
    type Error = std::io::Error;
    async fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        tokio::task::yield_now().await;
        SUM.fetch_add(self.n, Ordering::SeqCst);
        Ok(())
    }
}

fn main() -> Result<(), dj::Error> {
    let dir = std::env::temp_dir().join(format!("dj-ui-async-fn-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display()))?;
    db.migrate()?;

    SendWelcome { user_id: 1 }.delay().enqueue(&db)?;
    WithContext { n: 10 }.delay().enqueue(&db)?;
    SyncOne { n: 100 }.delay().enqueue(&db)?;
    Ping { n: 1000 }.delay().enqueue(&db)?;

    let report = dj::Worker::new(db.clone()).concurrency(2).work_off(10)?;
    assert_eq!(report.succeeded, 4);
    assert_eq!(SUM.load(Ordering::SeqCst), 1111);

    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
