//! Async jobs (`#[dj::job] async fn`) run by the same worker as sync ones: success, failure
//! with retry bookkeeping, a panic caught, and `max_run_time` dropping the future.

use std::time::{Duration, Instant};

use dj::{Job, JobFilter};
use dj_tests::jobs::{AsyncPanics, AsyncRecord, AsyncSleeps, Record};
use dj_tests::support::{Backend, TestDb};

use crate::Case;

pub const CASES: &[Case] = &[
    ("async_jobs_run_beside_sync_ones", beside_sync),
    ("async_job_failure_is_retried_with_backoff", failure_retried),
    ("async_job_panic_is_a_failed_attempt", panic_caught),
    ("async_job_past_max_run_time_is_dropped", max_run_time_drops),
];

fn beside_sync(backend: Backend) {
    let t = TestDb::new(backend, "asyncok");
    let log = t.log();
    for i in 0..10 {
        AsyncRecord {
            log: log.path(),
            key: format!("a{i}"),
            fail_first: 0,
        }
        .delay()
        .enqueue(&t.db)
        .unwrap();
        Record {
            log: log.path(),
            key: format!("s{i}"),
        }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    }
    let report = dj::Worker::new(t.db.clone())
        .concurrency(3)
        .work_off(100)
        .unwrap();
    assert_eq!(report.succeeded, 20);
    for i in 0..10 {
        assert_eq!(log.count(&format!("async a{i} attempts 0")), 1);
        assert_eq!(log.count(&format!("perform s{i}")), 1);
    }
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
}

fn failure_retried(backend: Backend) {
    let t = TestDb::new(backend, "asyncfail");
    let log = t.log();
    let id = AsyncRecord {
        log: log.path(),
        key: "f".into(),
        fail_first: 1,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let report = dj::Worker::new(t.db.clone()).work_off(1).unwrap();
    assert_eq!(report.failed, 1);
    let row = t.db.job(id).unwrap().expect("rescheduled");
    assert_eq!(row.attempts, 1);
    assert!(row.locked_by.is_none());
    assert_eq!(row.last_error.as_deref(), Some("async failure 0"));
    let wait = t.secs_from_now(row.run_at);
    assert!((4.0..=7.0).contains(&wait), "backoff 1^4 + 5 s, got {wait}");
}

fn panic_caught(backend: Backend) {
    let t = TestDb::new(backend, "asyncpanic");
    let log = t.log();
    let id = AsyncPanics { log: log.path() }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    let report = dj::Worker::new(t.db.clone()).work_off(1).unwrap();
    assert_eq!(report.failed, 1);
    assert_eq!(log.count("async panic"), 1);
    let row = t.db.job(id).unwrap().expect("rescheduled");
    assert_eq!(row.attempts, 1);
    assert!(
        row.last_error
            .as_deref()
            .unwrap()
            .contains("panicked: async boom"),
        "{row:?}"
    );
}

fn max_run_time_drops(backend: Backend) {
    let t = TestDb::new(backend, "asyncexpire");
    let log = t.log();
    let id = AsyncSleeps { log: log.path() }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    let started = Instant::now();
    let report = dj::Worker::new(t.db.clone()).work_off(1).unwrap();
    let took = started.elapsed();
    assert_eq!(report.failed, 1);
    assert!(
        took < Duration::from_secs(10),
        "dropped at 1 s, took {took:?}"
    );
    let row = t.db.job(id).unwrap().expect("rescheduled");
    assert!(
        row.last_error
            .as_deref()
            .unwrap()
            .contains("execution expired"),
        "{row:?}"
    );
    assert!(row.locked_by.is_none(), "released at once: {row:?}");
    assert_eq!(log.count("async sleep start"), 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(log.count("async sleep done"), 0, "the future was dropped");
}
