//! Job results: a job records a value with `Context::set_result`; it is stored in the
//! transaction that completes the job, read with `Db::job_result` and awaited (sync and async,
//! `enqueue_and_wait`); a failed job's wait returns its error; results are bounded in size and
//! pruned after `result_retention` by the elected maintenance worker.

use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

use dj::{Error, Job, JobFilter, JobResult, Worker};
use dj_tests::jobs::{Cubes, HugeResult, Record, Square, Squares};
use dj_tests::support::{Backend, TestDb};

use crate::operations::{dj, stderr, stdout, wait_until};
use crate::processes::{signal, spawn_worker, stop_workers, wait_exit};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "results_recorded_by_jobs_in_worker_processes_are_read_and_awaited",
        across_processes,
    ),
    (
        "a_result_over_the_limit_fails_the_job_with_a_clear_error",
        over_the_limit,
    ),
    (
        "a_deleted_failed_jobs_error_is_kept_as_its_result",
        deleted_failure,
    ),
    (
        "the_maintenance_worker_prunes_results_older_than_the_retention",
        pruned,
    ),
    (
        "show_prints_the_stored_outcome_of_a_job_whose_row_is_gone",
        show,
    ),
];

pub const POSTGRES_CASES: &[Case] = &[(
    "a_wait_for_a_result_listens_on_one_connection_and_holds_none_from_the_pool",
    listens,
)];

const WAIT: Duration = Duration::from_secs(60);

/// Job `i`'s queue (none, `mail` or `reports`) and priority (0-2).
pub fn placed<J: Job>(i: usize, delayed: dj::Delayed<J>) -> dj::Delayed<J> {
    let delayed = delayed.priority((i % 3) as i32);
    match i % 3 {
        0 => delayed,
        1 => delayed.queue("mail"),
        _ => delayed.queue("reports"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// 600 sync and 100 async jobs recording results, 50 that record none and one that fails,
/// over three queues and three priorities, worked by two processes (in fast lanes on
/// PostgreSQL) while the test awaits more of them: every job runs once and every result is
/// what its job recorded.
fn across_processes(backend: Backend) {
    let t = TestDb::new(backend, "results");
    let log = t.log();
    let squares: Vec<(i64, i64)> = (0..600)
        .map(|i| {
            let n = i as i64;
            let job = Squares { log: log.path(), n };
            (n, placed(i, job.delay()).enqueue(&t.db).unwrap())
        })
        .collect();
    let cubes: Vec<(i64, i64)> = (0..100)
        .map(|i| {
            let n = 1_000 + i as i64;
            let job = Cubes { log: log.path(), n };
            (n, placed(i, job.delay()).enqueue(&t.db).unwrap())
        })
        .collect();
    let plain: Vec<i64> = (0..50)
        .map(|i| {
            let job = Record {
                log: log.path(),
                key: format!("plain {i}"),
            };
            placed(i, job.delay()).enqueue(&t.db).unwrap()
        })
        .collect();
    let failing = Squares {
        log: log.path(),
        n: -1,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    assert_eq!(t.db.job_result(failing).unwrap(), JobResult::Pending);

    let mut workers: Vec<Child> = (0..2)
        .map(|i| {
            let args = ["work", "--concurrency", "4", "--sleep-delay", "0.2"];
            spawn_worker(&t, &format!("w{i}"), &args)
        })
        .collect();
    let rt = runtime();
    let awaited: Square = rt
        .block_on(
            Squares {
                log: log.path(),
                n: 5_000,
            }
            .delay()
            .enqueue_and_wait_async(&t.db, WAIT),
        )
        .unwrap();
    assert_eq!(
        awaited,
        Square {
            n: 5_000,
            square: 25_000_000
        }
    );
    let awaited: Square = Squares {
        log: log.path(),
        n: 5_001,
    }
    .delay()
    .enqueue_and_wait(&t.db, WAIT)
    .unwrap();
    assert_eq!(
        awaited,
        Square {
            n: 5_001,
            square: 25_010_001
        }
    );
    let failed = rt.block_on(
        Squares {
            log: log.path(),
            n: -5,
        }
        .delay()
        .enqueue_and_wait_async::<Square>(&t.db, WAIT),
    );
    match failed {
        Err(Error::JobFailed { error, .. }) => {
            assert!(error.contains("no square for -5"), "{error}")
        }
        other => panic!("a failed job's wait returns its error, not {other:?}"),
    }
    let cube = rt
        .block_on(t.db.wait_for_result_async(cubes[99].1, WAIT))
        .unwrap();
    assert_eq!(
        cube.value::<[i64; 2]>(cubes[99].1).unwrap(),
        [1_099, 1_099i64.pow(3)]
    );

    // Everything but the two failures done.
    let done = wait_until(WAIT, || {
        t.db.count_jobs(&JobFilter::default()).unwrap() == 2
    });
    stop_workers(&t, &mut workers);
    assert!(
        done,
        "{} rows left",
        t.db.count_jobs(&JobFilter::default()).unwrap()
    );

    let mut performs: HashMap<String, usize> = HashMap::new();
    for line in log.lines() {
        *performs.entry(line).or_default() += 1;
    }
    let twice: Vec<_> = performs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "performed more than once: {twice:?}");
    // The three awaited jobs too.
    assert_eq!(
        performs.len(),
        600 + 100 + 50 + 1 + 3,
        "every job performed"
    );

    for &(n, id) in &squares {
        let value: Square = t.db.job_result(id).unwrap().value(id).unwrap();
        assert_eq!(value, Square { n, square: n * n });
    }
    for &(n, id) in &cubes {
        let value: [i64; 2] = t.db.job_result(id).unwrap().value(id).unwrap();
        assert_eq!(value, [n, n * n * n]);
    }
    for &id in &plain {
        assert_eq!(t.db.job_result(id).unwrap(), JobResult::Gone);
    }
    match t.db.job_result(failing).unwrap() {
        JobResult::Failed { error } => assert!(error.contains("no square for -1"), "{error}"),
        other => panic!("the failed job's result is its error, not {other:?}"),
    }
    // One row per job that recorded a value; none for the plain jobs and the kept failures.
    assert_eq!(
        t.query_i64("SELECT count(*) FROM dj_results"),
        600 + 100 + 2
    );
}

/// A value whose JSON is over `MAX_RESULT_BYTES` is refused by `set_result`, naming the limit
/// and what to do; the job (which returns that error) fails, and nothing is stored.
fn over_the_limit(backend: Backend) {
    let t = TestDb::new(backend, "result_limit");
    let id = HugeResult.delay().enqueue(&t.db).unwrap();
    let report = Worker::new(t.db.clone()).work_off(10).unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    match t.db.job_result(id).unwrap() {
        JobResult::Failed { error } => assert!(
            error.contains("over dj's limit of 65536 bytes")
                && error.contains("store large data elsewhere"),
            "{error}"
        ),
        other => panic!("the job failed, not {other:?}"),
    }
    assert_eq!(t.query_i64("SELECT count(*) FROM dj_results"), 0);
}

/// Under `destroy_failed_jobs` the row of a job that failed for good is deleted: its error is
/// kept in `dj_results`, so its wait still returns it. A later success of a job with the same
/// id's result replaces it (as a kept failed job retried and succeeding would).
fn deleted_failure(backend: Backend) {
    let t = TestDb::new(backend, "result_deleted_failure");
    let log = t.log();
    let id = Squares {
        log: log.path(),
        n: -3,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let report = Worker::new(t.db.clone())
        .destroy_failed_jobs(true)
        .work_off(10)
        .unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    assert!(
        t.db.job(id).unwrap().is_none(),
        "the failed row was deleted"
    );
    let result = t.db.wait_for_result(id, Duration::from_secs(5)).unwrap();
    match &result {
        JobResult::Failed { error } => assert!(error.contains("no square for -3"), "{error}"),
        other => panic!("the deleted job's error is kept, not {other:?}"),
    }
    match result.value::<Square>(id) {
        Err(Error::JobFailed { id: failed, error }) => {
            assert_eq!(failed, id);
            assert!(error.contains("no square for -3"), "{error}");
        }
        other => panic!("value() of a failure is its error, not {other:?}"),
    }
}

/// Results stored longer ago than `result_retention` are deleted by the elected maintenance
/// worker, in batches (2,500 old ones: more than two), and the recent one is kept.
fn pruned(backend: Backend) {
    let t = TestDb::new(backend, "result_pruned");
    let ago = |what: &str| match t.backend {
        Backend::Postgres => format!("now() - interval '{what}'"),
        Backend::Sqlite => format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '-{what}')"),
        // MySQL's units are singular: `INTERVAL 3 DAY`.
        Backend::Mysql => format!("UTC_TIMESTAMP(6) - INTERVAL {}", what.trim_end_matches('s')),
    };
    let series = match t.backend {
        Backend::Postgres => "SELECT g FROM generate_series(1, 2500) AS g".to_owned(),
        Backend::Sqlite | Backend::Mysql => {
            "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s \
             WHERE g < 2500) SELECT g FROM s"
                .to_owned()
        }
    };
    let one = match t.backend {
        Backend::Postgres => "'1'::jsonb",
        Backend::Sqlite | Backend::Mysql => "'1'",
    };
    t.exec(&format!(
        "INSERT INTO dj_results (job_id, name, state, value, finished_at) \
         SELECT g, 'Squares', 'succeeded', {one}, {} FROM ({series}) AS old; \
         INSERT INTO dj_results (job_id, name, state, value, finished_at) \
         VALUES (9999, 'Squares', 'succeeded', '2', {})",
        ago("3 days"),
        ago("1 hours"),
    ));
    let worker = Worker::new(t.db.clone())
        .result_retention(Duration::from_secs(24 * 3600))
        .sleep_delay(Duration::from_millis(200));
    let stop = worker.stop_flag();
    let running = std::thread::spawn(move || worker.run().unwrap());
    let count = || t.query_i64("SELECT count(*) FROM dj_results");
    let pruned = wait_until(Duration::from_secs(20), || count() == 1);
    stop.set();
    running.join().unwrap();
    assert!(pruned, "{} results left", count());
    let kept = t.db.job_result(9999).unwrap();
    assert_eq!(kept, JobResult::Succeeded(serde_json::json!(2)));
}

/// On PostgreSQL a wait is woken by NOTIFY: while waits are under way the process has one
/// connection LISTENing on `dj_results` (however many waits), closed with its `Db`, and none of
/// the `Db`'s pooled connections is held between looks (a pool of one still serves other calls
/// meanwhile).
fn listens(backend: Backend) {
    let t = TestDb::new(backend, "result_listens");
    let app = format!("dj-results-{}", std::process::id());
    let db = dj::Db::builder(&t.url)
        .application_name(&app)
        .pool_size(1)
        .pool_timeout(Duration::from_secs(5))
        .open()
        .unwrap();
    let log = t.log();
    let later: Vec<i64> = (0..5)
        .map(|n| {
            Squares { log: log.path(), n }
                .delay()
                .run_in(Duration::from_secs(3))
                .enqueue(&db)
                .unwrap()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let waits: Vec<_> = later
        .iter()
        .map(|&id| {
            let db = db.clone();
            rt.spawn(async move { db.wait_for_result_async(id, WAIT).await })
        })
        .collect();
    let listening = |t: &TestDb| {
        t.query_i64(&format!(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = '{app}' AND query = 'LISTEN dj_results'"
        ))
    };
    assert!(
        wait_until(Duration::from_secs(10), || listening(&t) == 1),
        "{} connections LISTEN for the waits",
        listening(&t)
    );
    // The pool's one connection is free (a call waiting longer than `pool_timeout` for it
    // fails): the waits hold none between looks.
    for _ in 0..20 {
        assert_eq!(db.count_jobs(&JobFilter::default()).unwrap(), 5);
    }

    let mut worker = spawn_worker(&t, "w", &["work", "--sleep-delay", "0.2"]);
    for (n, wait) in waits.into_iter().enumerate() {
        let result = rt.block_on(wait).unwrap().unwrap();
        let n = n as i64;
        assert_eq!(
            result.value::<Square>(later[n as usize]).unwrap(),
            Square { n, square: n * n }
        );
    }
    signal(&worker, libc::SIGTERM);
    wait_exit(&mut worker, Duration::from_secs(30));
    assert_eq!(listening(&t), 1, "one LISTEN connection for every wait");
    // It closes with the `Db`.
    drop(db);
    assert!(
        wait_until(Duration::from_secs(10), || listening(&t) == 0),
        "the LISTEN connection outlived its Db"
    );
}

/// `show ID` of a finished job prints what `dj_results` kept: the value, or the error of a
/// job deleted when it failed; with `--json`, as `finished`. An id with neither is an error.
fn show(backend: Backend) {
    let t = TestDb::new(backend, "result_show");
    let log = t.log();
    let square = |n| {
        Squares { log: log.path(), n }
            .delay()
            .enqueue(&t.db)
            .unwrap()
    };
    let (ok, failed) = (square(9), square(-2));
    let out = dj(&t, &["workoff", "--delete-failed"]);
    assert!(!out.status.success(), "a job failed: {}", stdout(&out));

    let out = dj(&t, &["show", &ok.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("finished: succeeded"), "{text}");
    assert!(text.contains(r#"result: {"n":9,"square":81}"#), "{text}");

    let out = dj(&t, &["show", &ok.to_string(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["finished"]["result"]["square"], 81, "{json}");
    assert_eq!(json["finished"]["state"], "succeeded", "{json}");

    let out = dj(&t, &["show", &failed.to_string()]);
    let text = stdout(&out);
    assert!(text.contains("finished: failed"), "{text}");
    assert!(text.contains("no square for -2"), "{text}");

    let out = dj(&t, &["show", "999999"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no job with id 999999"),
        "{}",
        stderr(&out)
    );
}
