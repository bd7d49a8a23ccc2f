//! Attempt history: every failed attempt's number, worker, start, end and error is kept
//! (a job's latest `MAX_ATTEMPTS_KEPT`, each error cut to `MAX_ATTEMPT_ERROR_BYTES`), with
//! `last_error` as delayed_job has it; `show` and the job page list them; a crash is recorded
//! under the worker that died; the maintenance worker prunes those of jobs long gone.

use std::process::Child;
use std::time::{Duration, SystemTime};

use dj::{Job, JobFilter, Worker, MAX_ATTEMPTS_KEPT, MAX_ATTEMPT_ERROR_BYTES};
use dj_tests::jobs::{Flaky, Sleeps};
use dj_tests::support::{Backend, PerformLog, TestDb};

use crate::operations::{dj, stdout, wait_until};
use crate::processes::{signal, spawn_worker, stop_workers, wait_exit, worker_output};
use crate::web::{client, Web};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "failed_attempts_are_kept_with_worker_times_and_error_and_shown_by_show_and_the_job_page",
        kept_and_shown,
    ),
    (
        "a_crashed_attempt_is_recorded_under_the_worker_that_died",
        crash,
    ),
    (
        "attempts_are_bounded_per_job_and_pruned_after_their_job_is_long_gone",
        bounded_and_pruned,
    ),
];

fn flaky(log: &PerformLog, key: &str, fails: u32) -> Flaky {
    Flaky {
        log: log.path(),
        key: key.to_owned(),
        fails,
        millis: 0,
        pad: 0,
        for_good: false,
    }
}

/// Two worker processes run jobs that fail a few times (one for good, one with an error
/// over the limit) among others that do not: each job's history lists its failed attempts
/// in order, with the worker that ran each, its duration and its error; `show` (text and
/// JSON) and the job page list them.
fn kept_and_shown(backend: Backend) {
    let t = TestDb::new(backend, "attempts_kept");
    let log = t.log();
    let slow = Flaky {
        millis: 40,
        ..flaky(&log, "a", 3)
    };
    let a = slow
        .delay()
        .queue("mail")
        .priority(1)
        .enqueue(&t.db)
        .unwrap();
    let b = Flaky {
        for_good: true,
        ..flaky(&log, "b", 2)
    }
    .delay()
    .queue("reports")
    .enqueue(&t.db)
    .unwrap();
    let c = Flaky {
        pad: 6_000,
        ..flaky(&log, "c", 1)
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let steady: Vec<i64> = (0..20)
        .map(|i| {
            flaky(&log, &format!("ok{i}"), 0)
                .delay()
                .priority(i % 3)
                .enqueue(&t.db)
                .unwrap()
        })
        .collect();
    let args = ["work", "--concurrency", "2", "--sleep-delay", "0.05"];
    let mut workers: Vec<Child> = (0..2)
        .map(|i| spawn_worker(&t, &format!("w{i}"), &args))
        .collect();
    let settled = wait_until(Duration::from_secs(60), || {
        t.db.count_jobs(&JobFilter::default()).unwrap() == 1
            && t.db.job(b).unwrap().is_some_and(|r| r.failed_at.is_some())
    });
    stop_workers(&t, &mut workers);
    let output = format!("{}{}", worker_output(&t, "w0"), worker_output(&t, "w1"));
    assert!(settled, "{output}");

    let history = t.db.job_attempts(a).unwrap();
    let numbers: Vec<i32> = history.iter().map(|h| h.attempt).collect();
    assert_eq!(numbers, [1, 2, 3], "{history:?}");
    for (h, n) in history.iter().zip(1..) {
        assert_eq!(h.error, format!("a attempt {n} failed"));
        assert!(!h.worker.is_empty() && output.contains(&h.worker), "{h:?}");
        let took = h.duration();
        assert!(
            (Duration::from_millis(35)..Duration::from_secs(10)).contains(&took),
            "attempt {n} of a 40 ms job took {took:?}"
        );
        assert!(h.finished_at <= SystemTime::now() + Duration::from_secs(5));
    }
    assert!(
        history
            .windows(2)
            .all(|w| w[0].finished_at < w[1].started_at),
        "each attempt ends before the next starts: {history:?}"
    );
    let kept = t.db.job(b).unwrap().unwrap();
    assert_eq!(kept.last_error.as_deref(), Some("b attempt 2 failed"));
    let b_history = t.db.job_attempts(b).unwrap();
    assert_eq!(
        b_history
            .iter()
            .map(|h| h.error.as_str())
            .collect::<Vec<_>>(),
        ["b attempt 1 failed", "b attempt 2 failed"]
    );
    let cut = &t.db.job_attempts(c).unwrap()[0].error;
    assert!(cut.len() <= MAX_ATTEMPT_ERROR_BYTES, "{}", cut.len());
    assert!(cut.starts_with("c attempt 1 failedxxx") && cut.ends_with(" … (cut)"));
    for id in steady {
        assert!(t.db.job_attempts(id).unwrap().is_empty(), "job {id}");
    }

    // `show` of a job that succeeded (its row gone) and of one kept failed.
    let shown = stdout(&dj(&t, &["show", &a.to_string()]));
    for n in 1..=3 {
        assert!(shown.contains(&format!("#{n} ")), "{shown}");
        assert!(shown.contains(&format!("a attempt {n} failed")), "{shown}");
    }
    assert!(shown.contains(&history[0].worker), "{shown}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&dj(&t, &["show", &b.to_string(), "--json"]))).unwrap();
    let listed = json["attempts"].as_array().expect("attempts");
    assert_eq!(listed.len(), 2, "{json}");
    assert_eq!(listed[1]["error"], "b attempt 2 failed");
    assert_eq!(listed[1]["attempt"], 2);
    assert!(listed[0]["duration_secs"].as_f64().unwrap() >= 0.0);

    // The job page's timeline.
    let web = Web::start(&t, "web", &[]);
    let html = client()
        .get(format!("{}/jobs/{b}", web.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let timeline = html.split("id=\"attempts\"").nth(1).expect("a timeline");
    assert_eq!(timeline.matches("data-attempt=").count(), 2, "{html}");
    assert!(timeline.contains("b attempt 1 failed"), "{html}");
    assert!(timeline.contains(&b_history[0].worker), "{html}");
}

/// A worker SIGKILLed during a started job: the worker that rescues the job records the
/// attempt under the dead worker's name, from its recorded start.
fn crash(backend: Backend) {
    let t = TestDb::new(backend, "attempts_crash");
    let log = t.log();
    let id = Sleeps {
        log: log.path(),
        key: "long".into(),
        millis: 3_000,
        max_run_time_secs: None,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let args = ["work", "--sleep-delay", "0.1", "--heartbeat-timeout", "3s"];
    let mut a = spawn_worker(&t, "w0", &args);
    let started = wait_until(Duration::from_secs(30), || {
        t.db.job(id)
            .unwrap()
            .is_some_and(|r| r.started_at.is_some())
    });
    assert!(started, "{}", worker_output(&t, "w0"));
    let dead = t.db.job(id).unwrap().unwrap().locked_by.unwrap();
    signal(&a, libc::SIGKILL);
    wait_exit(&mut a, Duration::from_secs(10));
    let mut b = spawn_worker(&t, "w1", &args);
    let done = wait_until(Duration::from_secs(60), || log.count("done long") == 1);
    signal(&b, libc::SIGTERM);
    let status = wait_exit(&mut b, Duration::from_secs(30));
    assert!(status.success(), "w1: {}", worker_output(&t, "w1"));
    assert!(done, "{}", worker_output(&t, "w1"));
    let history = t.db.job_attempts(id).unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].attempt, 1);
    assert_eq!(history[0].worker, dead);
    assert!(history[0].duration() > Duration::ZERO, "{history:?}");
}

/// A job failing 30 times keeps its latest 25 attempts; the maintenance worker deletes the
/// attempts of jobs gone longer than the retention, not those of jobs still there or gone
/// lately.
fn bounded_and_pruned(backend: Backend) {
    let t = TestDb::new(backend, "attempts_bounded");
    let log = t.log();
    let waiting = flaky(&log, "waiting", 0)
        .delay()
        .run_at(SystemTime::now() + Duration::from_secs(3600))
        .enqueue(&t.db)
        .unwrap();
    let ago = |what: &str| match t.backend {
        Backend::Postgres => format!("now() - interval '{what}'"),
        Backend::Sqlite => format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '-{what}')"),
        // MySQL's units are singular: `INTERVAL 3 DAY`.
        Backend::Mysql => format!("UTC_TIMESTAMP(6) - INTERVAL {}", what.trim_end_matches('s')),
    };
    let series = match t.backend {
        Backend::Postgres => "SELECT g FROM generate_series(1000001, 1002500) AS g".to_owned(),
        Backend::Sqlite | Backend::Mysql => {
            "WITH RECURSIVE s(g) AS (SELECT 1000001 UNION ALL SELECT g + 1 \
             FROM s WHERE g < 1002500) SELECT g FROM s"
                .to_owned()
        }
    };
    t.exec(&format!(
        "INSERT INTO dj_attempts (job_id, attempt, worker, started_at, finished_at, error) \
         SELECT g, 1, 'gone', {old}, {old}, 'e' FROM ({series}) AS old; \
         INSERT INTO dj_attempts (job_id, attempt, worker, started_at, finished_at, error) \
         VALUES ({waiting}, 1, 'there', {old}, {old}, 'e'), \
                (2000001, 1, 'lately', {recent}, {recent}, 'e')",
        old = ago("3 days"),
        recent = ago("1 hours"),
    ));
    let id = flaky(&log, "thirty", 30).delay().enqueue(&t.db).unwrap();
    let worker = Worker::new(t.db.clone())
        .result_retention(Duration::from_secs(24 * 3600))
        .sleep_delay(Duration::from_millis(20));
    let stop = worker.stop_flag();
    let running = std::thread::spawn(move || worker.run().unwrap());
    let count = || t.query_i64("SELECT count(*) FROM dj_attempts WHERE worker <> 'gone'");
    let gone = || t.query_i64("SELECT count(*) FROM dj_attempts WHERE worker = 'gone'");
    let finished = wait_until(Duration::from_secs(60), || {
        log.count("perform thirty 31") == 1 && gone() == 0
    });
    stop.set();
    running.join().unwrap();
    assert!(
        finished,
        "{} performs; {} old attempts left",
        log.count_prefix("perform thirty"),
        gone()
    );
    let history = t.db.job_attempts(id).unwrap();
    let numbers: Vec<i32> = history.iter().map(|h| h.attempt).collect();
    let kept = MAX_ATTEMPTS_KEPT;
    assert_eq!(numbers, (30 - kept + 1..=30).collect::<Vec<_>>());
    assert_eq!(
        history[0].error,
        format!("thirty attempt {} failed", 30 - kept + 1)
    );
    // The waiting job's old attempt and the recent one stay, with the 25.
    assert_eq!(count(), i64::from(kept) + 2);
    assert_eq!(t.db.job_attempts(waiting).unwrap().len(), 1);
}
