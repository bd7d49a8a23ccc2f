//! The ready predicate, ordering, queue and priority filters, scheduled jobs.

use std::time::Duration;

use dj::{Job, Worker};
use dj_tests::jobs::Record;
use dj_tests::support::{Backend, PerformLog, TestDb};

use crate::Case;

pub const CASES: &[Case] = &[
    (
        "ready_jobs_run_in_priority_then_run_at_order",
        priority_then_run_at,
    ),
    ("queue_filter_takes_only_listed_queues", queue_filter),
    (
        "no_queue_filter_takes_every_queue_and_none",
        no_queue_filter,
    ),
    ("priority_band_filters", priority_band),
    ("future_run_at_is_not_run_early", future_run_at),
    (
        "claimed_batches_never_hand_one_job_to_two_workers",
        distinct_claims,
    ),
];

fn record(log: &PerformLog, key: &str) -> Record {
    Record {
        log: log.path(),
        key: key.to_owned(),
    }
}

/// One job at a time, so perform order is claim order.
pub fn serial(db: &TestDb) -> Worker {
    Worker::new(db.db.clone()).read_ahead(0)
}

fn priority_then_run_at(backend: Backend) {
    let t = TestDb::new(backend, "order");
    let log = t.log();
    let past = t.db.now().unwrap() - Duration::from_secs(60);
    record(&log, "p5")
        .delay()
        .priority(5)
        .enqueue(&t.db)
        .unwrap();
    record(&log, "p0-late").delay().enqueue(&t.db).unwrap();
    record(&log, "p0-early")
        .delay()
        .run_at(past)
        .enqueue(&t.db)
        .unwrap();
    record(&log, "p-10")
        .delay()
        .priority(-10)
        .enqueue(&t.db)
        .unwrap();

    let report = serial(&t).work_off(10).unwrap();
    assert_eq!(report.succeeded, 4);
    assert_eq!(
        log.lines(),
        [
            "perform p-10",
            "perform p0-early",
            "perform p0-late",
            "perform p5"
        ]
    );
}

fn queue_filter(backend: Backend) {
    let t = TestDb::new(backend, "queues");
    let log = t.log();
    record(&log, "a").delay().queue("a").enqueue(&t.db).unwrap();
    record(&log, "b").delay().queue("b").enqueue(&t.db).unwrap();
    record(&log, "none").delay().enqueue(&t.db).unwrap();
    record(&log, "hostile")
        .delay()
        .queue("x'); DROP TABLE delayed_jobs; --")
        .enqueue(&t.db)
        .unwrap();

    let report = serial(&t)
        .queues(["a", "x'); DROP TABLE delayed_jobs; --"])
        .work_off(10)
        .unwrap();
    assert_eq!(report.succeeded, 2);
    let mut lines = log.lines();
    lines.sort();
    assert_eq!(lines, ["perform a", "perform hostile"]);
    assert_eq!(t.db.count_jobs(&dj::JobFilter::default()).unwrap(), 2);
}

fn no_queue_filter(backend: Backend) {
    let t = TestDb::new(backend, "allqueues");
    let log = t.log();
    record(&log, "a").delay().queue("a").enqueue(&t.db).unwrap();
    record(&log, "none").delay().enqueue(&t.db).unwrap();
    let report = serial(&t).work_off(10).unwrap();
    assert_eq!(report.succeeded, 2);
    assert_eq!(log.lines().len(), 2);
}

fn priority_band(backend: Backend) {
    let t = TestDb::new(backend, "band");
    let log = t.log();
    for p in [-5, 0, 3, 7, 10] {
        record(&log, &p.to_string())
            .delay()
            .priority(p)
            .enqueue(&t.db)
            .unwrap();
    }
    let worker = Worker::new(t.db.clone())
        .min_priority(0)
        .max_priority(7)
        .read_ahead(0);
    assert_eq!(worker.work_off(10).unwrap().succeeded, 3);
    assert_eq!(log.lines(), ["perform 0", "perform 3", "perform 7"]);
}

fn future_run_at(backend: Backend) {
    let t = TestDb::new(backend, "future");
    let log = t.log();
    let id = record(&log, "later")
        .delay()
        .run_in(Duration::from_secs(3600))
        .enqueue(&t.db)
        .unwrap();
    let report = serial(&t).work_off(10).unwrap();
    assert_eq!(report.succeeded, 0);
    assert!(log.lines().is_empty());
    let row = t.db.job(id).unwrap().expect("still stored");
    let wait = t.secs_from_now(row.run_at);
    assert!((3590.0..3610.0).contains(&wait), "run_at is {wait}s away");
    assert_eq!(row.state(t.db.now().unwrap()), dj::JobState::Scheduled);
}

fn distinct_claims(backend: Backend) {
    let t = TestDb::new(backend, "distinct");
    let log = t.log();
    dj::enqueue_many(&t.db, (0..300).map(|i| record(&log, &i.to_string()))).unwrap();
    // Four workers in four threads of one process, each claiming batches.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let worker = Worker::new(t.db.clone())
                .name_prefix(format!("w{i}"))
                .read_ahead(20)
                .concurrency(2);
            std::thread::spawn(move || worker.work_off(1000).unwrap())
        })
        .collect();
    let total: u64 = handles
        .into_iter()
        .map(|h| h.join().unwrap().succeeded)
        .sum();
    assert_eq!(total, 300);
    let lines = log.lines();
    assert_eq!(lines.len(), 300);
    let unique: std::collections::HashSet<_> = lines.iter().collect();
    assert_eq!(unique.len(), 300, "some job ran twice");
}
