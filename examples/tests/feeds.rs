//! The feed reader's own tests, written with `dj::testing`.

use dj::Job;
use dj_examples::{serve_feeds, EntriesDb, FetchFeed};

fn temp_db(name: &str) -> (dj::Db, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("dj-example-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display())).unwrap();
    db.migrate().unwrap();
    (db, dir)
}

#[test]
fn enqueue_goes_to_the_feeds_queue() {
    let (db, _dir) = temp_db("enqueue");
    FetchFeed {
        url: "http://127.0.0.1:9/feeds/0.xml".into(),
    }
    .delay()
    .enqueue(&db)
    .unwrap();
    dj::testing::assert_enqueued::<FetchFeed>(&db, |e| {
        e.job.url.ends_with("/feeds/0.xml") && e.queue.as_deref() == Some("feeds")
    });
}

#[test]
fn inline_mode_fetches_and_stores_at_once() {
    let (db, dir) = temp_db("inline");
    let base = serve_feeds(1).unwrap();
    let entries = EntriesDb(dir.join("entries.db"));
    let _inline = dj::testing::inline_with(dj::State::new().with(entries.clone()));
    FetchFeed {
        url: format!("{base}/feeds/0.xml"),
    }
    .delay()
    .enqueue(&db)
    .unwrap();
    dj::testing::assert_not_enqueued::<FetchFeed>(&db);
    let stored: i64 = entries
        .open()
        .unwrap()
        .query_row("SELECT count(*) FROM feed_entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 3);
}

#[test]
fn a_broken_feed_is_retried_with_its_error() {
    let (db, dir) = temp_db("broken");
    let base = serve_feeds(1).unwrap();
    FetchFeed {
        url: format!("{base}/feeds/broken.xml"),
    }
    .delay()
    .enqueue(&db)
    .unwrap();
    let worker =
        dj::Worker::new(db.clone()).state(dj::State::new().with(EntriesDb(dir.join("e.db"))));
    let report = worker.work_off(10).unwrap();
    assert_eq!((report.succeeded, report.failed), (0, 1));
    let waiting = dj::testing::enqueued::<FetchFeed>(&db).unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].attempts, 1);
}

#[test]
fn the_report_workflow_fetches_transforms_each_feed_and_reports() {
    use dj_examples::report::{report_workflow, FeedSummary, Report};
    let (db, _dir) = temp_db("report");
    let base = serve_feeds(3).unwrap();
    let urls = (0..3).map(|i| format!("{base}/feeds/{i}.xml")).collect();
    let run = report_workflow(urls).enqueue(&db).unwrap();
    let done = dj::Worker::new(db.clone())
        .concurrency(2)
        .work_off(100)
        .unwrap();
    assert_eq!((done.succeeded, done.failed), (5, 0), "{done:?}");
    let workflow = db.workflow(run.id).unwrap().unwrap();
    assert_eq!(workflow.state, dj::WorkflowState::Succeeded);
    let summary: FeedSummary = db
        .job_result(run.step("transform-1").unwrap())
        .unwrap()
        .value(0)
        .unwrap();
    assert_eq!((summary.feed, summary.titles), (1, 3));
    let report: Report = db
        .job_result(run.step("report").unwrap())
        .unwrap()
        .value(0)
        .unwrap();
    assert_eq!((report.feeds, report.titles), (3, 9));
    assert!(report.words >= report.titles, "{report:?}");
}
