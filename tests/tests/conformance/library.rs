//! dj as a library: worker settings that compose in any order, `Db::builder`, the events a
//! worker tells a watching program, and no silent SQLite default when one is forbidden.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dj::{Event, Job, JobFilter, JobOutcome, Worker};
use dj_tests::jobs::{AlwaysFails, Record};
use dj_tests::support::{Backend, TestDb};

use crate::Case;

const WORKER: &str = env!("CARGO_BIN_EXE_dj-test-worker");

pub const CASES: &[Case] = &[
    ("worker_settings_compose_in_any_order", settings_compose),
    (
        "worker_events_tell_start_idle_each_job_and_stop",
        worker_events,
    ),
    ("db_builder_sets_the_pool_and_connects", db_builder),
    (
        "default_read_ahead_spreads_long_jobs_across_workers",
        long_jobs_spread,
    ),
];

/// About the default URL, which is SQLite's.
pub const SQLITE_CASES: &[Case] = &[(
    "require_database_url_refuses_the_sqlite_default",
    require_database_url,
)];

fn settings_compose(backend: Backend) {
    let t = TestDb::new(backend, "settings_compose");
    let worker = Worker::new(t.db.clone())
        .concurrency(4)
        .read_ahead(100)
        .sleep_delay(Duration::from_millis(250))
        .name_prefix("composed")
        .queues(["mail", "feeds"])
        .max_attempts(3)
        .destroy_failed_jobs(false);
    let s = worker.settings();
    assert_eq!((s.concurrency, s.read_ahead), (4, 100));
    assert_eq!(s.sleep_delay, Duration::from_millis(250));
    assert_eq!(s.queues, ["mail", "feeds"]);
    assert_eq!((s.max_attempts, s.destroy_failed_jobs), (3, false));
    assert!(
        worker.name().starts_with("composed host:"),
        "{}",
        worker.name()
    );
    // The same settings through a Config, then one more on the worker.
    let config = dj::WorkerConfig::default().concurrency(4).read_ahead(100);
    let worker = Worker::with_config(t.db.clone(), config).max_attempts(2);
    let s = worker.settings();
    assert_eq!((s.concurrency, s.read_ahead, s.max_attempts), (4, 100, 2));
}

fn worker_events(backend: Backend) {
    let t = TestDb::new(backend, "worker_events");
    let log = t.log();
    let ok = Record {
        log: log.path(),
        key: "ok".into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let bad = AlwaysFails {
        log: log.path(),
        key: "bad".into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let seen = events.clone();
    let report = Worker::new(t.db.clone())
        .read_ahead(0)
        .on_event(move |e| seen.lock().unwrap().push(e.clone()))
        .work_off(10)
        .unwrap();
    let events = events.lock().unwrap().clone();
    assert!(
        matches!(events.first(), Some(Event::Started { .. })),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(Event::Stopped { .. })),
        "{events:?}"
    );
    let finished: Vec<(i64, JobOutcome)> = events
        .iter()
        .filter_map(|e| match e {
            Event::JobFinished { id, outcome, .. } => Some((*id, *outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(
        finished,
        [(ok, JobOutcome::Succeeded), (bad, JobOutcome::Retried)]
    );
    let started = events
        .iter()
        .filter(|e| matches!(e, Event::JobStarted { name, .. } if name == "Record" || name == "AlwaysFails"))
        .count();
    assert_eq!(started, 2, "{events:?}");
    let at = |wanted: fn(&Event) -> bool| events.iter().position(wanted).unwrap();
    assert!(at(|e| matches!(e, Event::Idle)) < at(|e| matches!(e, Event::Stopping)));
    let Some(Event::Stopped { report: told }) = events.last() else {
        unreachable!()
    };
    assert_eq!(*told, report);
    assert_eq!((report.succeeded, report.failed), (1, 1));
    assert!(report.elapsed > Duration::ZERO);
}

fn db_builder(backend: Backend) {
    let t = TestDb::new(backend, "db_builder");
    let db = dj::Db::builder(&t.url)
        .pool_size(2)
        .pool_timeout(Duration::from_millis(500))
        .statement_timeout(Duration::from_secs(5))
        .application_name("dj-conformance")
        .connect()
        .unwrap();
    db.ping().unwrap();
    Record {
        log: "/dev/null".into(),
        key: "built".into(),
    }
    .delay()
    .enqueue(&db)
    .unwrap();
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 1);
    if backend == Backend::Postgres {
        let named = t.query_i64(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dj-conformance'",
        );
        assert!(
            named >= 1,
            "the pool's connection carries the application_name"
        );
        // A server that never answers fails `connect()` at once, not at the first enqueue.
        let silent = dj_tests::net::SilentServer::start();
        let url = format!("postgres://postgres@127.0.0.1:{}/test", silent.port());
        let started = std::time::Instant::now();
        let err = dj::Db::builder(&url)
            .connect_timeout(Duration::from_millis(500))
            .connect()
            .unwrap_err();
        assert!(matches!(err, dj::Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

fn require_database_url(backend: Backend) {
    let t = TestDb::new(backend, "require_database_url");
    let out = Command::new(WORKER)
        .args(["workoff"])
        .env_remove("DATABASE_URL")
        .env("DJ_REQUIRE_DATABASE_URL", "1")
        .current_dir(&t.dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("DATABASE_URL is not set"), "{stderr}");
    assert!(
        !t.dir.join("dj.sqlite3").exists(),
        "no SQLite file was made in the working directory"
    );
    // Without the variable, the default is used, and said so loudly when no one is at a
    // terminal to see it chosen.
    let default = |command: &str| {
        Command::new(WORKER)
            .arg(command)
            .env_remove("DATABASE_URL")
            .env_remove("DJ_REQUIRE_DATABASE_URL")
            .current_dir(&t.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert!(default("migrate").status.success());
    let out = default("workoff");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("Using sqlite:dj.sqlite3 (the default: DATABASE_URL is not set)"),
        "{stdout}"
    );
}

/// Default settings, two workers, ten 1-second jobs: the read-ahead follows the pace, so
/// neither worker holds more than it can start soon, and both do their share.
fn long_jobs_spread(backend: Backend) {
    let t = TestDb::new(backend, "long_jobs_spread");
    let log = t.log();
    for i in 0..10 {
        crate::processes::sleeps(&t, &log, &format!("j{i}"), 1000);
    }
    let workers: Vec<Worker> = (0..2)
        .map(|i| Worker::new(t.db.clone()).name_prefix(format!("spread{i}")))
        .collect();
    let stops: Vec<dj::StopFlag> = workers.iter().map(Worker::stop_flag).collect();
    let names: Vec<String> = workers.iter().map(|w| w.name().to_owned()).collect();
    let handles: Vec<_> = workers
        .into_iter()
        .map(|w| std::thread::spawn(move || w.run().unwrap()))
        .collect();
    let mut most_held = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while t.db.count_jobs(&JobFilter::default()).unwrap() > 0
        && std::time::Instant::now() < deadline
    {
        for (_, held) in t.db.lockers().unwrap() {
            most_held = most_held.max(held);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stops.iter().for_each(dj::StopFlag::set);
    let reports: Vec<dj::Report> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        t.db.count_jobs(&JobFilter::default()).unwrap(),
        0,
        "all ran"
    );
    // One running, and at most one finished whose delete is on its way.
    assert!(most_held <= 2, "a worker held {most_held} jobs at once");
    for (name, report) in names.iter().zip(&reports) {
        assert!(
            report.succeeded >= 3,
            "{name} did {} of 10",
            report.succeeded
        );
    }
}
