//! `dj::testing`, as an application's tests use it.

use dj::{Job, JobFilter};
use dj_tests::jobs::{AlwaysFails, ReadsState, Record, RecordsInfo, Renamed};
use dj_tests::support::{Backend, TestDb};

use crate::Case;

pub const CASES: &[Case] = &[
    ("inline_mode_performs_at_enqueue_through_serde", inline_mode),
    ("inline_mode_is_scoped_to_its_thread", inline_scoped),
    ("inline_failure_is_returned_to_the_caller", inline_failure),
    ("work_off_counts_succeeded_and_failed", work_off_counts),
    ("assert_enqueued_matches_fields_and_queue", assertions),
    (
        "inline_mode_keeps_the_builders_queue_and_priority",
        inline_options,
    ),
    (
        "enqueued_finds_rows_stored_under_an_alias",
        enqueued_aliases,
    ),
];

/// Inline mode makes the row `enqueue` would make, so the job sees the builder's options.
fn inline_options(backend: Backend) {
    let t = TestDb::new(backend, "inlineopts");
    let log = t.log();
    {
        let _inline = dj::testing::inline();
        RecordsInfo { log: log.path() }
            .delay()
            .enqueue(&t.db)
            .unwrap();
        RecordsInfo { log: log.path() }
            .delay()
            .queue("urgent")
            .priority(-3)
            .enqueue(&t.db)
            .unwrap();
        let err = RecordsInfo { log: log.path() }
            .delay()
            .queue("bad\nname")
            .enqueue(&t.db)
            .unwrap_err();
        assert!(err.to_string().contains("queue"), "{err}");
    }
    assert_eq!(log.lines(), ["info type-queue 4", "info urgent -3"]);
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
}

/// A row written before its type was renamed is one of the type's enqueued jobs.
fn enqueued_aliases(backend: Backend) {
    let t = TestDb::new(backend, "enqalias");
    let log = t.log();
    Renamed { log: log.path() }.delay().enqueue(&t.db).unwrap();
    let handler = serde_json::json!({"job": "OldName", "args": {"log": "old"}}).to_string();
    t.exec(&format!(
        "INSERT INTO delayed_jobs (name, handler, run_at, created_at, updated_at) \
         VALUES ('OldName', '{}', {now}, {now}, {now})",
        handler.replace('\'', "''"),
        now = crate::enqueue::now_sql(backend)
    ));
    let enqueued = dj::testing::enqueued::<Renamed>(&t.db).unwrap();
    let logs: Vec<&str> = enqueued.iter().map(|e| e.job.log.as_str()).collect();
    assert_eq!(logs, [log.path().as_str(), "old"]);
    dj::testing::assert_enqueued::<Renamed>(&t.db, |e| e.job.log == "old");
}

fn inline_mode(backend: Backend) {
    let t = TestDb::new(backend, "inline");
    let log = t.log();
    {
        let _inline = dj::testing::inline_with(dj_tests::state());
        let id = Record {
            log: log.path(),
            key: "now".into(),
        }
        .delay()
        .enqueue(&t.db)
        .unwrap();
        assert_eq!(id, 0);
        ReadsState { log: log.path() }
            .delay()
            .enqueue(&t.db)
            .unwrap();
    }
    assert_eq!(
        log.lines(),
        [
            "perform now",
            "state: hello from the worker state",
            "attempts: 0"
        ]
    );
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
    // The guard is gone: enqueue stores again.
    Record {
        log: log.path(),
        key: "later".into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 1);
}

fn inline_scoped(backend: Backend) {
    let t = TestDb::new(backend, "inlinescope");
    let log = t.log();
    let _inline = dj::testing::inline();
    let db = t.db.clone();
    let path = log.path();
    std::thread::spawn(move || {
        Record {
            log: path,
            key: "other thread".into(),
        }
        .delay()
        .enqueue(&db)
        .unwrap();
    })
    .join()
    .unwrap();
    assert!(log.lines().is_empty(), "another thread is not inline");
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 1);
}

fn inline_failure(backend: Backend) {
    let t = TestDb::new(backend, "inlinefail");
    let log = t.log();
    let _inline = dj::testing::inline();
    let err = AlwaysFails {
        log: log.path(),
        key: "x".into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap_err();
    assert!(err.to_string().contains("could not fetch x"), "{err}");
}

fn work_off_counts(backend: Backend) {
    let t = TestDb::new(backend, "workoff");
    let log = t.log();
    for i in 0..3 {
        Record {
            log: log.path(),
            key: i.to_string(),
        }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    }
    AlwaysFails {
        log: log.path(),
        key: "bad".into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let report = dj::testing::work_off(&t.db, 2).unwrap();
    assert_eq!(report.succeeded + report.failed, 2, "at most n jobs");
    let report2 = dj::testing::work_off(&t.db, 10).unwrap();
    assert_eq!(report.succeeded + report2.succeeded, 3);
    assert_eq!(report.failed + report2.failed, 1);
}

fn assertions(backend: Backend) {
    let t = TestDb::new(backend, "asserts");
    Record {
        log: "l".into(),
        key: "k1".into(),
    }
    .delay()
    .queue("feeds")
    .priority(2)
    .enqueue(&t.db)
    .unwrap();
    dj::testing::assert_enqueued::<Record>(&t.db, |e| {
        e.job.key == "k1" && e.queue.as_deref() == Some("feeds") && e.priority == 2
    });
    dj::testing::assert_not_enqueued::<AlwaysFails>(&t.db);
    let missing = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dj::testing::assert_enqueued::<Record>(&t.db, |e| e.job.key == "k2");
    }));
    let message = *missing.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains("expected an enqueued `Record`"),
        "{message}"
    );
    assert!(message.contains("k1"), "lists what is enqueued: {message}");
}
