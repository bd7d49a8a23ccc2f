//! A `#[dj::job]` function enqueued and worked off on SQLite: the struct's fields reach the
//! function, and the worker's context is passed in.

use std::sync::atomic::{AtomicI64, Ordering};

use dj::Job;

static RECEIVED: AtomicI64 = AtomicI64::new(0);

#[dj::job(queue = "mail")]
fn send_welcome(ctx: &dj::Context, user_id: i64, email: String) -> Result<(), std::io::Error> {
    assert_eq!(ctx.job().name, "send_welcome");
    assert_eq!(email, "a@example.com");
    RECEIVED.store(user_id, Ordering::SeqCst);
    Ok(())
}

fn main() -> Result<(), dj::Error> {
    let dir = std::env::temp_dir().join(format!("dj-ui-job-fn-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display()))?;
    db.migrate()?;

    let id = SendWelcome {
        user_id: 7,
        email: "a@example.com".into(),
    }
    .delay()
    .enqueue(&db)?;
    assert_eq!(
        db.job(id)?.map(|row| row.queue),
        Some(Some("mail".to_owned()))
    );

    let report = dj::Worker::new(db.clone()).work_off(10)?;
    assert_eq!(report.succeeded, 1);
    assert_eq!(RECEIVED.load(Ordering::SeqCst), 7);

    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
