//! The workflow example: fetch three feeds, transform each in its own step, then report on
//! them all. It serves the feeds itself on 127.0.0.1, enqueues the workflow, runs a worker
//! with two executors until it is done, and prints each step and the report.
//!
//! cargo run -p dj-examples --bin report

use std::time::Duration;

use dj_examples::report::{report_workflow, Report};
use dj_examples::serve_feeds;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = dj::database_url(None);
    let db = dj::Db::open(&url)?;
    db.migrate()?;
    let base = serve_feeds(3)?;
    let urls = (0..3).map(|i| format!("{base}/feeds/{i}.xml")).collect();
    let run = report_workflow(urls).enqueue(&db)?;
    println!("Enqueued workflow {} into {url}", run.id);

    let worker = dj::Worker::new(db.clone()).concurrency(2);
    worker.work_off(100)?;
    let workflow = db.workflow(run.id)?.ok_or("the workflow is gone")?;
    println!("Workflow {} is {:?}:", run.id, workflow.state);
    for step in &workflow.steps {
        println!(
            "  {:<12} {:?} (after: {})",
            step.name,
            step.state,
            step.after.join(", ")
        );
    }
    let report_id = run.step("report").ok_or("no report step")?;
    let report: Report = db
        .wait_for_result(report_id, Duration::from_secs(5))?
        .value(report_id)?;
    println!(
        "Report: {} feeds, {} titles, {} words",
        report.feeds, report.titles, report.words
    );
    Ok(())
}
