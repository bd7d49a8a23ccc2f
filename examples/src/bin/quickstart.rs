//! dj's quick start: declare a job, enqueue some, run a worker on them, see what happened.
//! No server needed: with no `DATABASE_URL`, jobs live in `dj.sqlite3` in this directory.
//!
//! cargo run -p dj-examples --bin quickstart

use std::time::Duration;

use dj::{Context, Job, JobFilter, Perform};
use serde::{Deserialize, Serialize};

#[derive(Debug, Job, Serialize, Deserialize)]
#[job(queue = "mail", max_attempts = 3)]
struct SendWelcome {
    email: String,
}

impl Perform for SendWelcome {
    type Error = dj::Message;

    fn perform(&self, ctx: &Context) -> Result<(), dj::Message> {
        if !self.email.contains('@') {
            return Err(dj::Message(format!("not an email address: {}", self.email)));
        }
        println!(
            "  (job {}) sending a welcome mail to {}",
            ctx.job().id,
            self.email
        );
        Ok(())
    }
}

/// A plain function is a job too: `#[dj::job]` generates `Resize { photo_id }`.
#[dj::job(priority = -5)]
fn resize(photo_id: i64) -> Result<(), std::io::Error> {
    println!("  resizing photo {photo_id}");
    Ok(())
}

fn main() -> Result<(), dj::Error> {
    // delayed_job's log lines on stdout, as the worker binary prints them.
    dj::cli::init_logging(dj::cli::LogFormat::Text);
    let db = dj::Db::from_env()?;
    db.migrate()?;
    println!("jobs are stored in {}", db.url());

    SendWelcome {
        email: "ada@example.com".into(),
    }
    .delay()
    .enqueue(&db)?;
    SendWelcome {
        email: "grace@example.com".into(),
    }
    .delay()
    .priority(5)
    .enqueue(&db)?;
    SendWelcome {
        email: "not-an-address".into(),
    }
    .delay()
    .enqueue(&db)?;
    Resize { photo_id: 42 }.delay().enqueue(&db)?;
    let later = SendWelcome {
        email: "later@example.com".into(),
    }
    .delay()
    .run_in(Duration::from_secs(3600))
    .enqueue(&db)?;
    println!("enqueued 5 jobs; none has run yet");

    println!("working off what is ready:");
    let report = dj::Worker::new(db.clone()).work_off(100)?;
    println!("{} succeeded, {} failed", report.succeeded, report.failed);

    for row in db.jobs(&JobFilter::default())? {
        println!(
            "still stored: #{} {} attempts={} run_at in {:.0}s last_error={:?}",
            row.id,
            row.name,
            row.attempts,
            row.run_at
                .duration_since(db.now()?)
                .unwrap_or_default()
                .as_secs_f64(),
            row.last_error
        );
    }
    // Tidy up so the next run starts fresh.
    db.delete_jobs(&JobFilter {
        id: Some(later),
        ..JobFilter::default()
    })?;
    db.delete_jobs(&JobFilter {
        name: Some("SendWelcome".into()),
        ..JobFilter::default()
    })?;
    Ok(())
}
