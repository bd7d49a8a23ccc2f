//! delayed_job's feed reader, offline: serves sample feeds on 127.0.0.1, enqueues a
//! `FetchFeed` job per feed (and one for a feed that answers 500), works them off, and prints
//! what was stored. `DATABASE_URL` chooses the job database (default: sqlite:dj.sqlite3).
//!
//! cargo run -p dj-examples --bin feeds

use dj::{Job, JobFilter};
use dj_examples::{serve_feeds, EntriesDb, FetchFeed};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = dj::Db::from_env()?;
    db.migrate()?;
    let base = serve_feeds(3)?;
    println!("serving sample feeds at {base}/feeds/0.xml .. 2.xml");

    for n in 0..3 {
        let id = FetchFeed {
            url: format!("{base}/feeds/{n}.xml"),
        }
        .delay()
        .enqueue(&db)?;
        println!("enqueued FetchFeed #{id}");
    }
    let broken = FetchFeed {
        url: format!("{base}/feeds/broken.xml"),
    }
    .delay()
    .enqueue(&db)?;

    let entries =
        EntriesDb(std::env::temp_dir().join(format!("dj-feeds-{}.db", std::process::id())));
    let worker = dj::Worker::new(db.clone())
        .queues(["feeds"])
        .state(dj::State::new().with(entries.clone()));
    let report = worker.work_off(100)?;
    println!(
        "worker: {} succeeded, {} failed",
        report.succeeded, report.failed
    );

    let conn = entries.open()?;
    let mut rows = conn.prepare("SELECT feed, title FROM feed_entries ORDER BY feed, title")?;
    for row in rows.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (feed, title) = row?;
        println!("  {feed}: {title}");
    }
    if let Some(row) = db.job(broken)? {
        println!(
            "the broken feed's job #{broken} waits for attempt {} (last_error: {})",
            row.attempts + 1,
            row.last_error.unwrap_or_default()
        );
        db.delete_jobs(&JobFilter {
            id: Some(broken),
            ..JobFilter::default()
        })?;
    }
    std::fs::remove_file(&entries.0).ok();
    Ok(())
}
