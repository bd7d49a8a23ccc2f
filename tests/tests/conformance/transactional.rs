//! Transactional completion (`#[job(transactional = true)]`, `Context::complete_in`): a job's
//! writes and the deletion of its row commit together or not at all, through every driver
//! library, so that kills, killed backends and a worker declared dead never leave an effect
//! twice or a completion without its effect. Every case counts effects in the database and
//! performs in a log.

use std::collections::HashMap;
use std::process::Child;
use std::time::{Duration, Instant};

use dj::{Job, JobFilter, JobResult};
use dj_tests::jobs::{ending, AsyncDeposit, CompletesUntagged, Deposit, Record, CREATE_EFFECTS};
use dj_tests::pool::PoolDeposit;
use dj_tests::support::{Backend, PerformLog, TestDb};

use crate::operations::wait_until;
use crate::processes::{
    signal, spawn_bin_at, spawn_worker, stop_workers, wait_exit, worker_output,
};
use crate::results::placed;
use crate::Case;

const POOL_WORKER: &str = env!("CARGO_BIN_EXE_dj-pool-worker");

pub const CASES: &[Case] = &[
    (
        "transactional_jobs_commit_effect_and_completion_together_through_every_driver",
        every_driver,
    ),
    (
        "complete_in_from_a_type_not_marked_transactional_fails_saying_what_to_add",
        untagged,
    ),
    (
        "a_worker_declared_dead_cannot_commit_its_transactional_job",
        declared_dead,
    ),
    (
        "chaos_transactional_jobs_killed_every_2s_leave_every_effect_exactly_once",
        killed_every_2s,
    ),
    (
        "a_workflow_step_completed_in_its_own_transaction_releases_its_dependants",
        workflow_steps,
    ),
];

pub const POSTGRES_CASES: &[Case] = &[
    (
        "an_open_completion_holds_its_workers_registration_until_it_commits",
        registration_held,
    ),
    (
        "chaos_transactional_jobs_on_a_pool_with_backends_terminated_and_kills_run_once",
        pool_chaos,
    ),
];

/// Quick polling and death judged within 3 s, as the chaos cases use.
fn work_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["work", "--sleep-delay", "0.1", "--heartbeat-timeout", "3s"];
    args.extend_from_slice(extra);
    args
}

/// The sync driver of the backend's own library.
fn native(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "rusqlite",
        Backend::Mysql => "mysql",
    }
}

fn deposit(t: &TestDb, log: &PerformLog, key: &str, driver: &str) -> Deposit {
    Deposit {
        log: log.path(),
        url: t.url.clone(),
        key: key.to_owned(),
        driver: driver.to_owned(),
        millis: 0,
        hold_ms: 0,
        ending: ending::COMMIT,
    }
}

/// How many times each key's effect is in the `effects` table.
fn effects(t: &TestDb) -> HashMap<String, i64> {
    let sql = "SELECT effect, count(*) FROM effects GROUP BY effect";
    match t.backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(t.sqlite_path()).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            let mut select = conn.prepare(sql).unwrap();
            let rows = select
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap();
            rows.map(Result::unwrap).collect()
        }
        Backend::Postgres => (t.pg_client().query(sql, &[]).unwrap().iter())
            .map(|r| (r.get(0), r.get(1)))
            .collect(),
        Backend::Mysql => {
            use mysql::prelude::Queryable;
            let rows: Vec<(String, i64)> = t.mysql_conn().query(sql).unwrap();
            rows.into_iter().collect()
        }
    }
}

/// Every key's effect is there exactly once, and no other.
fn assert_exactly_once(t: &TestDb, keys: &[String]) {
    let effects = effects(t);
    let wrong: Vec<(&String, Option<&i64>)> = (keys.iter())
        .map(|k| (k, effects.get(k)))
        .filter(|(_, n)| *n != Some(&1))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} effects not there exactly once (key, count): {:?}",
        wrong.len(),
        keys.len(),
        &wrong[..wrong.len().min(20)]
    );
    assert_eq!(effects.len(), keys.len(), "effects of unknown keys");
}

fn table_empty(t: &TestDb) -> bool {
    t.db.count_jobs(&JobFilter::default()).unwrap() == 0
}

/// [`stop_workers`] once `w0` is up (a TERM before its handlers are installed kills it).
fn stop_last(t: &TestDb, last: &mut [Child; 1]) {
    let up = wait_until(Duration::from_secs(20), || {
        worker_output(t, "w0").contains("Starting job worker")
    });
    assert!(up, "w0 started\n{}", worker_output(t, "w0"));
    stop_workers(t, last);
}

fn performs(log: &PerformLog) -> usize {
    log.count_prefix("perform ")
}

/// Sync and async jobs through each driver library of the backend, over three queues, among
/// plain jobs, worked by two processes: each effect is there once and each result is its
/// key; a job whose transaction completed its row but rolled back runs again (the worker
/// says why); one that returned an error after its commit is done, not retried.
fn every_driver(backend: Backend) {
    let t = TestDb::new(backend, "txdrivers");
    t.exec(CREATE_EFFECTS);
    let log = t.log();
    let (sync, not_sync): (&[&str], &[&str]) = match backend {
        Backend::Postgres => (&["postgres", "diesel"], &["tokio-postgres", "sqlx"]),
        Backend::Sqlite => (&["rusqlite", "diesel"], &["sqlx"]),
        Backend::Mysql => (&["mysql", "diesel"], &["sqlx"]),
    };
    let mut ids: Vec<(i64, String)> = Vec::new();
    let mut rolled_back = Vec::new();
    let mut errs_after = Vec::new();
    for driver in sync {
        for i in 0..22 {
            let key = format!("{driver}-{i}");
            let mut job = deposit(&t, &log, &key, driver);
            match i {
                20 => {
                    job.ending = ending::ROLL_BACK;
                    rolled_back.push(key.clone());
                }
                21 => {
                    job.ending = ending::ERR_AFTER_COMMIT;
                    errs_after.push(key.clone());
                }
                _ => {}
            }
            ids.push((placed(i, job.delay()).enqueue(&t.db).unwrap(), key));
        }
    }
    for driver in not_sync {
        for i in 0..20 {
            let key = format!("{driver}-{i}");
            let job = AsyncDeposit {
                log: log.path(),
                url: t.url.clone(),
                key: key.clone(),
                driver: (*driver).to_owned(),
            };
            ids.push((placed(i, job.delay()).enqueue(&t.db).unwrap(), key));
        }
    }
    dj::enqueue_many(
        &t.db,
        (0..30).map(|i| Record {
            log: log.path(),
            key: format!("plain-{i}"),
        }),
    )
    .unwrap();

    let mut workers: Vec<Child> = (0..2)
        .map(|i| spawn_worker(&t, &format!("w{i}"), &work_args(&["--concurrency", "4"])))
        .collect();
    let drained = wait_until(Duration::from_secs(90), || table_empty(&t));
    stop_workers(&t, &mut workers);
    let output = format!("{}{}", worker_output(&t, "w0"), worker_output(&t, "w1"));
    assert!(
        drained,
        "left: {:?}\n{output}",
        t.db.jobs(&JobFilter::default()).unwrap()
    );

    let keys: Vec<String> = ids.iter().map(|(_, k)| k.clone()).collect();
    assert_exactly_once(&t, &keys);
    for (id, key) in &ids {
        assert_eq!(
            t.db.job_result(*id).unwrap(),
            JobResult::Succeeded(serde_json::json!(key)),
            "job {id} ({key})"
        );
    }
    for key in &rolled_back {
        assert_eq!(log.count(&format!("perform {key}")), 2, "{key} ran again");
    }
    for key in &errs_after {
        assert_eq!(log.count(&format!("perform {key}")), 1, "{key} ran once");
    }
    for (_, key) in ids.iter().filter(|(_, k)| !rolled_back.contains(k)) {
        assert_eq!(log.count(&format!("perform {key}")), 1, "{key} ran once");
    }
    for i in 0..30 {
        assert_eq!(log.count(&format!("perform plain-{i}")), 1, "plain-{i}");
    }
    assert_eq!(
        output
            .matches("in a transaction that did not commit")
            .count(),
        rolled_back.len(),
        "{output}"
    );
    assert_eq!(
        output
            .matches("returned an error after its transaction had completed it")
            .count(),
        errs_after.len(),
        "{output}"
    );
    assert!(output.contains("(in its own transaction)"), "{output}");
}

/// `complete_in` from a type without `transactional = true` fails, naming the attribute.
fn untagged(backend: Backend) {
    let t = TestDb::new(backend, "txuntagged");
    let id = CompletesUntagged { url: t.url.clone() }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    let report = dj::Worker::new(t.db.clone()).work_off(1).unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    match t.db.job_result(id).unwrap() {
        JobResult::Failed { error } => assert!(
            error.contains("is not marked `#[job(transactional = true)]`: add it"),
            "{error}"
        ),
        other => panic!("failed for good, with the error: {other:?}"),
    }
}

/// Workflow steps that complete their rows with `complete_in`, through the backend's sync
/// driver and diesel: each step's completion finishes it in the job's own transaction, so its
/// dependants run after it, the workflow succeeds, and a step whose transaction rolled back
/// runs again before its dependant.
fn workflow_steps(backend: Backend) {
    let t = TestDb::new(backend, "txworkflow");
    t.exec(CREATE_EFFECTS);
    let log = t.log();
    let step = |key: &str, driver: &str, ending: u8| Deposit {
        ending,
        ..deposit(&t, &log, key, driver)
    };
    let mut workflow = dj::Workflow::new("pay then receipt");
    workflow.step(
        "pay",
        step("pay", native(backend), ending::ROLL_BACK).delay(),
    );
    workflow
        .step("ledger", step("ledger", "diesel", ending::COMMIT).delay())
        .after(["pay"]);
    workflow
        .step(
            "receipt",
            step("receipt", native(backend), ending::COMMIT).delay(),
        )
        .after(["pay", "ledger"]);
    let run = workflow.enqueue(&t.db).unwrap();
    let worker = dj::Worker::new(t.db.clone());
    for _ in 0..10 {
        if t.db.workflow(run.id).unwrap().unwrap().state != dj::WorkflowState::Running {
            break;
        }
        worker.work_off(10).unwrap();
        // The rolled-back step is retried after its backoff.
        let _ = t.db.retry_jobs(&JobFilter::default());
    }
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert_eq!(info.state, dj::WorkflowState::Succeeded, "{info:?}");
    let keys = ["pay", "ledger", "receipt"].map(str::to_owned);
    assert_exactly_once(&t, &keys);
    assert_eq!(
        log.count("perform pay"),
        2,
        "the rolled-back step ran again"
    );
    let order: Vec<String> = (log.lines().into_iter())
        .filter(|l| l.starts_with("perform "))
        .collect();
    assert_eq!(
        order,
        [
            "perform pay",
            "perform pay",
            "perform ledger",
            "perform receipt"
        ],
        "each step after the ones it waits for"
    );
    assert!(table_empty(&t));
}

/// Worker A starts a transactional job and freezes (SIGSTOP) before its transaction; B
/// declares A dead, takes the job and commits it; A, thawed, has its completion refused and
/// its transaction rolled back: the effect is there once.
fn declared_dead(backend: Backend) {
    let t = TestDb::new(backend, "txdead");
    t.exec(CREATE_EFFECTS);
    let log = t.log();
    let job = Deposit {
        hold_ms: 1_500,
        ..deposit(&t, &log, "k", native(backend))
    };
    let id = job.delay().enqueue(&t.db).unwrap();
    let a = spawn_worker(&t, "w0", &work_args(&["--concurrency", "1"]));
    assert!(
        log.wait_for("perform k", Duration::from_secs(30)),
        "{}",
        worker_output(&t, "w0")
    );
    signal(&a, libc::SIGSTOP);
    let b = spawn_worker(&t, "w1", &work_args(&["--concurrency", "1"]));
    let taken = wait_until(Duration::from_secs(40), || {
        table_empty(&t) && log.count("perform k") == 2
    });
    signal(&a, libc::SIGCONT);
    let refused = wait_until(Duration::from_secs(30), || {
        log.count_prefix("refused k: ") == 1
    });
    let mut workers = [a, b];
    stop_workers(&t, &mut workers);
    let output = format!("{}{}", worker_output(&t, "w0"), worker_output(&t, "w1"));
    assert!(taken, "B ran the job after declaring A dead\n{output}");
    assert!(refused, "A's completion was refused\n{output}");
    let line = log
        .lines()
        .into_iter()
        .find(|l| l.starts_with("refused k: "));
    assert!(
        line.as_deref()
            .is_some_and(|l| l.contains(&format!("job {id} is no longer held by worker"))),
        "{line:?}"
    );
    assert_exactly_once(&t, &["k".to_owned()]);
    assert_eq!(
        t.db.job_result(id).unwrap(),
        JobResult::Succeeded(serde_json::json!("k"))
    );
}

/// Transactional jobs that hold their transaction open a moment after completing their row,
/// on three queues; a worker SIGKILLed every 2 s for 20 s, then one drains the rest: every
/// effect is there exactly once, and kills made jobs run again.
fn killed_every_2s(backend: Backend) {
    let t = TestDb::new(backend, "txchaoskill");
    t.exec(CREATE_EFFECTS);
    let log = t.log();
    let (n, millis) = match backend {
        Backend::Postgres => (3_000, 20),
        Backend::Sqlite => (1_500, 10),
        Backend::Mysql => (3_000, 20),
    };
    let keys: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    let jobs = keys.iter().enumerate().map(|(i, key)| {
        let job = Deposit {
            millis,
            ..deposit(&t, &log, key, native(backend))
        };
        placed(i, job.delay())
    });
    dj::enqueue_many(&t.db, jobs.collect::<Vec<_>>()).unwrap();
    let args = work_args(&["--concurrency", "4"]);
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < Duration::from_secs(20) && !table_empty(&t) {
        let mut w = spawn_worker(&t, &format!("k{kills}"), &args);
        std::thread::sleep(Duration::from_secs(2));
        signal(&w, libc::SIGKILL);
        wait_exit(&mut w, Duration::from_secs(10));
        kills += 1;
    }
    let mut last = [spawn_worker(&t, "w0", &args)];
    let drained = wait_until(Duration::from_secs(180), || table_empty(&t));
    stop_last(&t, &mut last);
    assert!(drained, "drained\n{}", worker_output(&t, "w0"));
    assert!(kills >= 5, "only {kills} kills before the table drained");
    assert_exactly_once(&t, &keys);
    let performs = performs(&log);
    eprintln!(
        "{}: {kills} SIGKILLs; {performs} performs for {n} jobs; every effect once",
        backend.name()
    );
    assert!(
        performs > n,
        "kills made jobs run again: {performs} performs"
    );
}

/// PostgreSQL: while a job's transaction that has completed its row is open, its worker's
/// registration cannot be removed (the rescuer's delete waits for the commit), so that the
/// worker cannot be declared dead between the check and the commit.
fn registration_held(backend: Backend) {
    let t = TestDb::new(backend, "txregistration");
    t.exec(CREATE_EFFECTS);
    let log = t.log();
    let job = Deposit {
        millis: 3_000,
        ..deposit(&t, &log, "k", "postgres")
    };
    job.delay().enqueue(&t.db).unwrap();
    let mut w = [spawn_worker(&t, "w0", &work_args(&[]))];
    assert!(log.wait_for("perform k", Duration::from_secs(30)));
    let mut client = t.pg_client();
    // The job has run dj_complete and sleeps in its open transaction.
    let idle = wait_until(Duration::from_secs(10), || {
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' \
                 AND query LIKE 'SELECT dj_complete%'",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            == 1
    });
    assert!(idle, "the job's transaction is open after dj_complete");
    let name: String = client
        .query_one("SELECT name FROM dj_workers", &[])
        .unwrap()
        .get(0);
    let mut tx = client.transaction().unwrap();
    tx.batch_execute("SET LOCAL lock_timeout = '300ms'")
        .unwrap();
    let removed = tx.execute("DELETE FROM dj_workers WHERE name = $1", &[&name]);
    let code = removed.as_ref().err().and_then(|e| e.code()).cloned();
    assert_eq!(
        code,
        Some(postgres::error::SqlState::LOCK_NOT_AVAILABLE),
        "{removed:?}"
    );
    drop(tx);
    let drained = wait_until(Duration::from_secs(30), || table_empty(&t));
    stop_workers(&t, &mut w);
    assert!(drained, "{}", worker_output(&t, "w0"));
    assert_exactly_once(&t, &["k".to_owned()]);
}

/// PostgreSQL, the app's shape: async jobs on the worker's sqlx pool. For 20 s, every
/// second the server terminates every backend of the worker (its own connections and the
/// pool's), and every other second the worker is SIGKILLed; then one drains the rest. Every
/// effect is there exactly once.
fn pool_chaos(backend: Backend) {
    let t = TestDb::new(backend, "txchaospool");
    t.exec(CREATE_EFFECTS);
    t.exec(dj_tests::pool::CREATE_TABLE);
    let log = t.log();
    let n = 2_000;
    let keys: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let jobs = keys.iter().enumerate().map(|(i, key)| {
        let job = PoolDeposit {
            log: log.path(),
            key: key.clone(),
            millis: 10,
        };
        placed(i, job.delay())
    });
    dj::enqueue_many(&t.db, jobs.collect::<Vec<_>>()).unwrap();
    let app = format!("dj_txchaos_{}", std::process::id());
    let url = format!("{}&application_name={app}", t.url);
    let args = work_args(&["--concurrency", "4"]);
    let mut client = t.pg_client();
    let started = Instant::now();
    let (mut kills, mut terminated) = (0, 0);
    while started.elapsed() < Duration::from_secs(20) && !table_empty(&t) {
        let mut w = spawn_bin_at(POOL_WORKER, &t, &format!("k{kills}"), &url, &args);
        std::thread::sleep(Duration::from_secs(1));
        terminated += client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&app],
            )
            .unwrap()
            .len();
        std::thread::sleep(Duration::from_secs(1));
        signal(&w, libc::SIGKILL);
        wait_exit(&mut w, Duration::from_secs(10));
        kills += 1;
    }
    let mut last = [spawn_bin_at(POOL_WORKER, &t, "w0", &url, &args)];
    let drained = wait_until(Duration::from_secs(180), || table_empty(&t));
    stop_last(&t, &mut last);
    assert!(drained, "drained\n{}", worker_output(&t, "w0"));
    assert!(kills >= 5, "only {kills} kills before the table drained");
    assert!(terminated >= 5, "terminated {terminated} backends");
    assert_exactly_once(&t, &keys);
    let performs = performs(&log);
    eprintln!(
        "postgres pool: {kills} SIGKILLs, {terminated} backends terminated; {performs} \
         performs for {n} jobs; every effect once"
    );
    assert!(
        performs > n,
        "chaos made jobs run again: {performs} performs"
    );
}
