//! What failure does: retry bookkeeping and backoff, running out of attempts with either
//! destroy setting, the failure hook, panics, unloadable handlers, max_run_time.

use std::time::{Duration, Instant};

use dj::{Job, JobFilter, JobState, Worker};
use dj_tests::jobs::{AlwaysFails, FailsFast, GivesUp, Panics, Record, Sleeps};
use dj_tests::support::{Backend, TestDb};

use crate::enqueue::now_sql;
use crate::order::serial;
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "failed_attempt_is_rescheduled_with_backoff_and_error",
        retry_bookkeeping,
    ),
    (
        "out_of_attempts_deletes_by_default",
        out_of_attempts_destroy,
    ),
    (
        "out_of_attempts_keeps_failed_at_when_asked",
        out_of_attempts_keep,
    ),
    (
        "failure_hook_that_panics_still_fails_the_job",
        failure_hook_panics,
    ),
    (
        "worker_keeps_failed_jobs_unless_set_to_delete_them",
        worker_keeps_failed,
    ),
    (
        "unloadable_handlers_fail_permanently_and_are_counted",
        unloadable,
    ),
    ("panicking_perform_is_a_failed_attempt", panicking_perform),
    ("permanent_error_skips_remaining_attempts", permanent_error),
    (
        "max_run_time_fails_the_attempt_without_a_second_run",
        max_run_time,
    ),
];

fn retry_bookkeeping(backend: Backend) {
    let t = TestDb::new(backend, "retry");
    let log = t.log();
    let id = AlwaysFails {
        log: log.path(),
        key: "feed".into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let report = serial(&t).work_off(10).unwrap();
    assert_eq!((report.succeeded, report.failed), (0, 1));
    assert_eq!(log.lines(), ["perform feed"]);
    let row = t.db.job(id).unwrap().expect("kept for a retry");
    assert_eq!(row.attempts, 1);
    assert_eq!(row.locked_at, None);
    assert_eq!(row.locked_by, None);
    assert_eq!(row.failed_at, None);
    let error = row.last_error.unwrap();
    assert!(error.starts_with("could not fetch feed"), "{error}");
    assert!(error.contains("caused by: connection refused"), "{error}");
    // attempts⁴ + 5 = 6 seconds after the failure.
    let wait = t.secs_from_now(row.run_at);
    assert!(
        (4.0..=6.5).contains(&wait),
        "run_at is {wait}s away, expected about 6"
    );
}

fn run_until_gone(t: &TestDb, worker: &Worker, id: i64) {
    for _ in 0..10 {
        worker.work_off(10).unwrap();
        match t.db.job(id).unwrap() {
            Some(row) if row.failed_at.is_none() => continue,
            _ => return,
        }
    }
}

fn out_of_attempts_destroy(backend: Backend) {
    let t = TestDb::new(backend, "destroy");
    let log = t.log();
    let id = FailsFast {
        log: log.path(),
        keep: false,
        failure_panics: false,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    run_until_gone(&t, &serial(&t), id);
    assert!(
        t.db.job(id).unwrap().is_none(),
        "deleted after its last attempt"
    );
    assert_eq!(log.count("perform"), 3, "max_attempts = 3 runs in all");
    assert_eq!(
        log.count("failure: still broken"),
        1,
        "failure hook runs once"
    );
}

fn out_of_attempts_keep(backend: Backend) {
    let t = TestDb::new(backend, "keep");
    let log = t.log();
    let id = FailsFast {
        log: log.path(),
        keep: true,
        failure_panics: false,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    run_until_gone(&t, &serial(&t), id);
    let row = t.db.job(id).unwrap().expect("kept");
    assert!(row.failed_at.is_some());
    assert_eq!(row.attempts, 3);
    assert_eq!(row.locked_by, None);
    assert_eq!(row.state(t.db.now().unwrap()), JobState::Failed);
    assert_eq!(log.count("perform"), 3);
    assert_eq!(log.count("failure: still broken"), 1);
    // A failed job is never claimed again.
    let report = serial(&t).work_off(10).unwrap();
    assert_eq!(
        (report.succeeded, report.failed, report.interrupted),
        (0, 0, 0)
    );
}

fn failure_hook_panics(backend: Backend) {
    let t = TestDb::new(backend, "hookpanic");
    let log = t.log();
    let id = FailsFast {
        log: log.path(),
        keep: true,
        failure_panics: true,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    run_until_gone(&t, &serial(&t), id);
    let row = t.db.job(id).unwrap().expect("kept");
    assert!(
        row.failed_at.is_some(),
        "failed even though the failure hook panicked"
    );
    assert_eq!(log.count("failure: still broken"), 1);
}

fn worker_keeps_failed(backend: Backend) {
    let t = TestDb::new(backend, "workerkeep");
    let log = t.log();
    let id = GivesUp { log: log.path() }.delay().enqueue(&t.db).unwrap();
    assert!(!Worker::new(t.db.clone()).settings().destroy_failed_jobs);
    assert_eq!(Worker::new(t.db.clone()).work_off(10).unwrap().failed, 1);
    assert!(t.db.job(id).unwrap().unwrap().failed_at.is_some());
    let id = GivesUp { log: log.path() }.delay().enqueue(&t.db).unwrap();
    let worker = Worker::new(t.db.clone()).destroy_failed_jobs(true);
    assert_eq!(worker.work_off(10).unwrap().failed, 1);
    assert!(t.db.job(id).unwrap().is_none(), "deleted when asked");
}

fn unloadable(backend: Backend) {
    let t = TestDb::new(backend, "unloadable");
    let log = t.log();
    let now = now_sql(backend);
    for (name, handler) in [
        ("NoSuchJob", r#"{"job":"NoSuchJob","args":{}}"#),
        (
            "Record",
            r#"{"job":"Record","args":{"key":"missing the log field"}}"#,
        ),
        ("Record", r#"{"job": "Record", "args": {"#),
    ] {
        t.exec(&format!(
            "INSERT INTO delayed_jobs (name, handler, run_at, created_at, updated_at) \
             VALUES ('{name}', '{handler}', {now}, {now}, {now})"
        ));
    }
    Record {
        log: log.path(),
        key: "after".into(),
    }
    .delay()
    .priority(10)
    .enqueue(&t.db)
    .unwrap();
    let worker = Worker::new(t.db.clone())
        .destroy_failed_jobs(false)
        .read_ahead(0);
    let report = worker.work_off(10).unwrap();
    assert_eq!(
        (report.succeeded, report.failed),
        (1, 3),
        "the worker went on after bad rows"
    );
    assert_eq!(log.lines(), ["perform after"]);
    let failed =
        t.db.jobs(&JobFilter {
            state: Some(JobState::Failed),
            ..JobFilter::default()
        })
        .unwrap();
    assert_eq!(failed.len(), 3);
    let errors: Vec<String> = failed
        .iter()
        .map(|r| r.last_error.clone().unwrap())
        .collect();
    assert!(
        errors[0].contains("no job named `NoSuchJob`"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("Record"),
        "lists the known names: {}",
        errors[0]
    );
    assert!(errors[1].contains("missing field `log`"), "{}", errors[1]);
    assert!(errors[2].contains("not dj's JSON"), "{}", errors[2]);
    assert!(
        failed.iter().all(|r| r.attempts == 0),
        "a load failure is not an attempt"
    );
}

fn panicking_perform(backend: Backend) {
    let t = TestDb::new(backend, "panic");
    let log = t.log();
    let id = Panics { log: log.path() }.delay().enqueue(&t.db).unwrap();
    let report = serial(&t).work_off(10).unwrap();
    assert_eq!(report.failed, 1);
    let row = t.db.job(id).unwrap().unwrap();
    assert_eq!(row.attempts, 1);
    assert!(row.last_error.unwrap().contains("panicked: boom"));
    assert_eq!(row.locked_by, None);
}

fn permanent_error(backend: Backend) {
    let t = TestDb::new(backend, "permanent");
    let log = t.log();
    let id = GivesUp { log: log.path() }.delay().enqueue(&t.db).unwrap();
    assert_eq!(serial(&t).work_off(10).unwrap().failed, 1);
    let row = t.db.job(id).unwrap().expect("kept by default");
    assert!(row.failed_at.is_some(), "{row:?}");
    assert_eq!(log.count("perform"), 1);
}

fn max_run_time(backend: Backend) {
    let t = TestDb::new(backend, "maxrun");
    let log = t.log();
    let id = Sleeps {
        log: log.path(),
        key: "slow".into(),
        millis: 2500,
        max_run_time_secs: Some(1),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let worker = Worker::new(t.db.clone());
    let name = worker.name().to_owned();
    let started = Instant::now();
    let handle = std::thread::spawn(move || worker.work_off(10).unwrap());
    // Past its max_run_time the attempt is recorded, but the row stays locked while the
    // code still runs, so no other worker can start it.
    let mut seen_expired = false;
    while started.elapsed() < Duration::from_millis(2300) {
        if let Some(row) = t.db.job(id).unwrap() {
            if row.attempts == 1 {
                assert_eq!(
                    row.locked_by.as_deref(),
                    Some(name.as_str()),
                    "still fenced"
                );
                let error = row.last_error.unwrap();
                assert!(
                    error.contains("execution expired (max_run_time is only 1 second)"),
                    "{error}"
                );
                seen_expired = true;
                let other = Worker::new(t.db.clone()).name_prefix("other");
                let report = other.work_off(10).unwrap();
                assert_eq!(report.succeeded + report.failed, 0, "not claimable");
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen_expired,
        "the overrun was recorded before the job returned"
    );
    let report = handle.join().unwrap();
    assert_eq!(report.failed, 1);
    let row = t.db.job(id).unwrap().expect("rescheduled");
    assert_eq!(row.locked_by, None, "released once the code returned");
    assert_eq!(row.attempts, 1);
    assert_eq!(log.count("start slow"), 1);
}
