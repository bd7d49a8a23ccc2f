//! State functions: the worker's state built inside its own tokio runtime before the first
//! job (`Worker::state_with`, `dj::main!(state)`). In process on both backends; on
//! PostgreSQL, worker processes whose state is a real `sqlx::PgPool` shared by every job.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dj::{Job, JobFilter, Setup, State};
use dj_tests::jobs::{Greeting, ReadsState};
use dj_tests::pool::{PoolInsert, PoolInsertSync, CREATE_TABLE, MAX_CONNECTIONS};
use dj_tests::support::{Backend, TestDb};

use crate::processes::{spawn_bin, spawn_bin_at, wait_exit, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "state_function_runs_in_the_workers_runtime_at_each_run",
        runs_in_the_runtime,
    ),
    (
        "failing_state_function_ends_the_run_before_any_claim",
        failing_in_process,
    ),
];

pub const POSTGRES_CASES: &[Case] = &[
    (
        "async_state_builds_one_sqlx_pool_that_every_job_shares",
        pool_shared_by_every_job,
    ),
    (
        "failing_state_function_stops_the_worker_process_at_start",
        failing_process,
    ),
    (
        "state_function_gets_the_database_url_given_on_the_command_line",
        command_line_url,
    ),
    ("sync_state_function_may_make_a_lazy_sqlx_pool", lazy_pool),
];

const POOL_WORKER: &str = env!("CARGO_BIN_EXE_dj-pool-worker");
const LAZY_POOL_WORKER: &str = env!("CARGO_BIN_EXE_dj-lazy-pool-worker");

/// An async state function gets the worker's `Db` and URL, may spawn on the worker's runtime
/// and await its timers, and runs again at each run; jobs of both kinds see its state.
fn runs_in_the_runtime(backend: Backend) {
    let t = TestDb::new(backend, "state_runtime");
    let log = t.log();
    let calls = Arc::new(AtomicUsize::new(0));
    let urls = Arc::new(Mutex::new(Vec::new()));
    let (counter, seen) = (calls.clone(), urls.clone());
    let state = move |setup: Setup| {
        let call = counter.fetch_add(1, Ordering::SeqCst) + 1;
        seen.lock().unwrap().push(setup.database_url().to_owned());
        async move {
            // Both panic outside a tokio runtime.
            let spawned = tokio::spawn(async move { format!("built by call {call}") });
            tokio::time::sleep(Duration::from_millis(5)).await;
            let greeting = spawned.await.map_err(|e| e.to_string())?;
            assert!(setup.db().ping().is_ok());
            Ok::<_, String>(State::new().with(Greeting(greeting)))
        }
    };
    let worker = dj::Worker::new(t.db.clone()).state_with(state);
    for run in 1..=2 {
        ReadsState { log: log.path() }
            .delay()
            .enqueue(&t.db)
            .unwrap();
        let report = worker.work_off(10).expect("work off");
        assert_eq!(report.succeeded, 1, "run {run}");
        assert_eq!(
            log.count(&format!("state: built by call {run}")),
            1,
            "{:?}",
            log.lines()
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one call per run");
    assert_eq!(*urls.lock().unwrap(), vec![t.url.clone(), t.url.clone()]);
}

/// An `Err` from the state function ends `work_off` with `Error::State`: nothing claimed,
/// nothing registered, the job untouched.
fn failing_in_process(backend: Backend) {
    let t = TestDb::new(backend, "state_fails");
    let log = t.log();
    let id = ReadsState { log: log.path() }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    let state = |_: Setup| async {
        Err::<State, _>(std::io::Error::other("the users database is not reachable"))
    };
    let error = dj::Worker::new(t.db.clone())
        .state_with(state)
        .work_off(10)
        .expect_err("the state function failed");
    assert!(matches!(error, dj::Error::State(_)), "{error}");
    assert_eq!(
        error.to_string(),
        "the worker's state function failed, so the worker did not start: the users database is not reachable"
    );
    let row = t.db.job(id).unwrap().expect("the job is still there");
    assert_eq!((row.attempts, row.locked_by), (0, None));
    assert!(t.db.workers().unwrap().is_empty());
    assert!(log.lines().is_empty());
}

/// 50 async jobs and 5 sync ones at 8 at a time, on a pool of at most 3 connections built by
/// the worker binary's async state function: every job ran, through at most 3 server
/// processes, and the worker exits 0.
fn pool_shared_by_every_job(backend: Backend) {
    let t = TestDb::new(backend, "state_pool");
    t.exec(CREATE_TABLE);
    dj::enqueue_many(&t.db, (0..50).map(|n| PoolInsert { n })).unwrap();
    dj::enqueue_many(&t.db, (50..55).map(|n| PoolInsertSync { n })).unwrap();
    let mut w = spawn_bin(POOL_WORKER, &t, "pool", &["workoff", "--concurrency", "8"]);
    let status = wait_exit(&mut w, Duration::from_secs(60));
    let out = worker_output(&t, "pool");
    assert!(status.success(), "{out}");
    assert!(out.contains("55 jobs processed at"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
    assert_eq!(t.query_i64("SELECT count(DISTINCT n) FROM pool_items"), 55);
    assert_eq!(t.query_i64("SELECT count(*) FROM pool_items"), 55);
    let pids = t.query_i64("SELECT count(DISTINCT pid) FROM pool_items");
    assert!(
        (1..=i64::from(MAX_CONNECTIONS)).contains(&pids),
        "{pids} connections for a pool of at most {MAX_CONNECTIONS}"
    );
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
}

/// The state function fails (the application's table is missing): the worker exits non-zero
/// at start, naming the error, before it registers or claims.
fn failing_process(backend: Backend) {
    let t = TestDb::new(backend, "state_pool_fails");
    let id = PoolInsert { n: 1 }.delay().enqueue(&t.db).unwrap();
    let mut w = spawn_bin(POOL_WORKER, &t, "fails", &["work"]);
    let status = wait_exit(&mut w, Duration::from_secs(30));
    let out = worker_output(&t, "fails");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("error: the worker's state function failed, so the worker did not start"),
        "{out}"
    );
    assert!(
        out.contains(r#"relation "pool_items" does not exist"#),
        "{out}"
    );
    assert!(!out.contains("Starting job worker"), "{out}");
    let row = t.db.job(id).unwrap().expect("the job is still there");
    assert_eq!((row.attempts, row.locked_by), (0, None));
    assert!(t.db.workers().unwrap().is_empty());
}

/// `--database-url` wins over a `DATABASE_URL` that leads nowhere, for dj and for the state
/// function alike: the pool connects where the worker does.
fn command_line_url(backend: Backend) {
    let t = TestDb::new(backend, "state_pool_url");
    t.exec(CREATE_TABLE);
    dj::enqueue_many(&t.db, (0..5).map(|n| PoolInsert { n })).unwrap();
    let nowhere = "postgres://nobody@127.0.0.1:9/nowhere?connect_timeout=1";
    let args = ["--database-url", t.url.as_str(), "workoff"];
    let mut w = spawn_bin_at(POOL_WORKER, &t, "url", nowhere, &args);
    let status = wait_exit(&mut w, Duration::from_secs(30));
    let out = worker_output(&t, "url");
    assert!(status.success(), "{out}");
    assert_eq!(t.query_i64("SELECT count(*) FROM pool_items"), 5, "{out}");
}

/// The form programs were written in: `fn state() -> State` with `PgPool::connect_lazy`,
/// which needs a tokio runtime around it. It runs inside the worker's, so the pool works for
/// async and sync jobs.
fn lazy_pool(backend: Backend) {
    let t = TestDb::new(backend, "state_lazy_pool");
    t.exec(CREATE_TABLE);
    dj::enqueue_many(&t.db, (0..10).map(|n| PoolInsert { n })).unwrap();
    dj::enqueue_many(&t.db, (10..12).map(|n| PoolInsertSync { n })).unwrap();
    let args = ["workoff", "--concurrency", "4"];
    let mut w = spawn_bin(LAZY_POOL_WORKER, &t, "lazy", &args);
    let status = wait_exit(&mut w, Duration::from_secs(60));
    let out = worker_output(&t, "lazy");
    assert!(status.success(), "{out}");
    assert_eq!(
        t.query_i64("SELECT count(DISTINCT n) FROM pool_items"),
        12,
        "{out}"
    );
    let pids = t.query_i64("SELECT count(DISTINCT pid) FROM pool_items");
    assert!(pids <= i64::from(MAX_CONNECTIONS), "{pids} connections");
}
