//! Job control: snooze (not an attempt), cancel (a running job stopped within a second, a
//! waiting one failed as "cancelled") and per-queue concurrency limits across worker
//! processes, checked by a database-side count.

use std::time::{Duration, Instant};

use dj::{Cancel, Job, JobFilter, Worker};
use dj_tests::jobs::{AsyncWaits, Cancellable, CountsRunning, Snoozes};
use dj_tests::support::{Backend, TestDb};

use crate::operations::wait_until;
use crate::pause::cli;
use crate::processes::{signal, spawn_worker, wait_exit, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    ("snooze_reschedules_without_counting_an_attempt", snooze),
    (
        "cancel_fails_a_waiting_job_and_stops_running_ones_within_a_second",
        cancel,
    ),
    ("queue_limit_holds_across_worker_processes", queue_limit),
];

fn snooze(backend: Backend) {
    let t = TestDb::new(backend, "snooze");
    let log = t.log();
    let id = Snoozes {
        log: log.path(),
        times: 3,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let mut snoozed = 0;
    for _ in 0..10 {
        if log.count_prefix("done") == 1 {
            break;
        }
        let report = Worker::new(t.db.clone()).work_off(10).unwrap();
        assert_eq!(report.failed, 0);
        snoozed += report.snoozed;
        if log.count_prefix("done") == 0 {
            let row = t.db.job(id).unwrap().expect("rescheduled, not deleted");
            assert_eq!(row.attempts, 0, "a snooze is not an attempt: {row:?}");
            assert!(row.last_error.is_none(), "{row:?}");
        }
    }
    assert_eq!(log.lines(), ["done snoozes 3 attempts 0"]);
    assert_eq!(snoozed, 3);
    assert!(t.db.job(id).unwrap().is_none());

    // Bounded: past max_snoozes a snooze is a failed attempt.
    let id = Snoozes {
        log: log.path(),
        times: 100,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let (mut snoozed, mut failed) = (0, 0);
    for _ in 0..10 {
        let report = Worker::new(t.db.clone())
            .max_snoozes(2)
            .max_attempts(1)
            .destroy_failed_jobs(false)
            .work_off(10)
            .unwrap();
        snoozed += report.snoozed;
        failed += report.failed;
        if failed > 0 {
            break;
        }
    }
    assert_eq!((snoozed, failed), (2, 1));
    let row = t.db.job(id).unwrap().expect("kept");
    assert!(row.failed_at.is_some(), "{row:?}");
    assert_eq!(row.snoozes, 2);
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or("")
            .contains("max_snoozes"),
        "{row:?}"
    );
}

fn cancel(backend: Backend) {
    let t = TestDb::new(backend, "cancel");
    let log = t.log();
    // A waiting job: failed at once as "cancelled", kept, and retry brings it back.
    let waiting = Cancellable { log: log.path() }
        .delay()
        .run_in(Duration::from_secs(3600))
        .enqueue(&t.db)
        .unwrap();
    assert_eq!(t.db.cancel(waiting).unwrap(), Cancel::Dequeued);
    let row = t.db.job(waiting).unwrap().expect("kept");
    assert!(row.failed_at.is_some());
    assert_eq!(row.last_error.as_deref(), Some("cancelled"));
    assert_eq!(t.db.cancel(waiting).unwrap(), Cancel::NotFound);
    t.db.delete_jobs(&JobFilter {
        id: Some(waiting),
        ..JobFilter::default()
    })
    .unwrap();

    // Running jobs, sync and async, in a real worker process.
    let sync_id = Cancellable { log: log.path() }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    let async_id = AsyncWaits { log: log.path() }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    let mut worker = spawn_worker(
        &t,
        "w",
        &["work", "--concurrency", "2", "--sleep-delay", "0.2"],
    );
    assert!(
        wait_until(Duration::from_secs(20), || log.count("start") == 1
            && log.count("async start") == 1),
        "both start: {}",
        worker_output(&t, "w")
    );
    for (id, line) in [(sync_id, "cancelled"), (async_id, "")] {
        let asked = Instant::now();
        let out = cli(&t, &["cancel", &id.to_string()]);
        assert!(out.contains("Asked the worker"), "{out}");
        let stopped = wait_until(Duration::from_secs(5), || {
            t.db.job(id)
                .unwrap()
                .is_some_and(|row| row.failed_at.is_some())
        });
        assert!(stopped, "job {id} stops: {}", worker_output(&t, "w"));
        println!(
            "{}: cancel of job {id} -> failed as cancelled in {:.2?}",
            backend.name(),
            asked.elapsed()
        );
        if !line.is_empty() {
            assert_eq!(log.count(line), 1);
        }
        let row = t.db.job(id).unwrap().expect("a cancelled job is kept");
        assert_eq!(row.last_error.as_deref(), Some("cancelled"), "{row:?}");
        assert_eq!(row.attempts, 1, "no retries: {row:?}");
    }
    assert_eq!(log.count("done") + log.count("async done"), 0);
    signal(&worker, libc::SIGTERM);
    assert!(wait_exit(&mut worker, Duration::from_secs(30)).success());
}

fn queue_limit(backend: Backend) {
    let t = TestDb::new(backend, "queue_limit");
    let log = t.log();
    assert!(cli(&t, &["limit", "sync", "2"]).contains("at most 2 running"));
    assert_eq!(t.db.queue_limits().unwrap(), vec![("sync".to_owned(), 2)]);
    let jobs = 24;
    dj::enqueue_many(
        &t.db,
        (0..jobs).map(|_| {
            CountsRunning {
                log: log.path(),
                queue: "sync".into(),
            }
            .delay()
            .queue("sync")
        }),
    )
    .unwrap();
    let mut workers: Vec<_> = (0..3)
        .map(|i| {
            spawn_worker(
                &t,
                &format!("w{i}"),
                &["work", "--concurrency", "4", "--sleep-delay", "0.2"],
            )
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(60), || log.count_prefix("running")
            == jobs),
        "all run: {}",
        worker_output(&t, "w0")
    );
    let counts: Vec<i64> = log
        .lines()
        .iter()
        .map(|l| l.trim_start_matches("running ").parse().unwrap())
        .collect();
    let most = counts.iter().copied().max().unwrap();
    println!(
        "{}: most running at once under a limit of 2: {most}",
        backend.name()
    );
    assert!(most <= 2, "limit broken: {counts:?}");
    // Every count includes the job itself.
    assert!(counts.iter().all(|&n| n >= 1), "{counts:?}");
    assert!(cli(&t, &["limit", "sync", "none"]).contains("limit removed"));
    assert!(t.db.queue_limits().unwrap().is_empty());
    for w in &workers {
        signal(w, libc::SIGTERM);
    }
    for w in &mut workers {
        assert!(wait_exit(w, Duration::from_secs(30)).success());
    }
}
