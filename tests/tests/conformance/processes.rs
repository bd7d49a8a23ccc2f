//! Real worker processes (the `dj-test-worker` binary, whose jobs live in the `dj_tests`
//! library crate): exactly-once across processes, SIGKILL, TERM, poison pills, duplicate names.

use std::fs::File;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dj::{Job, JobFilter};
use dj_tests::jobs::{KillsWorker, Record, Sleeps};
use dj_tests::support::{Backend, PerformLog, TestDb};

use crate::Case;

pub const CASES: &[Case] = &[
    (
        "worker_processes_perform_every_job_exactly_once",
        exactly_once,
    ),
    ("sigkilled_workers_job_is_performed_by_another", sigkill),
    (
        "term_lets_the_running_job_finish_and_exits_0",
        term_finishes_job,
    ),
    (
        "job_that_kills_its_worker_runs_out_of_attempts",
        poison_pill,
    ),
    (
        "job_that_kills_its_worker_in_a_fast_lane_runs_out_of_attempts",
        poison_pill_in_a_lane,
    ),
    (
        "two_jobs_with_one_name_stop_the_worker_at_start",
        duplicate_names,
    ),
    (
        "workoff_exits_non_zero_when_a_job_failed",
        workoff_exit_code,
    ),
    (
        "failed_log_line_gives_the_cause_chain_last_error_stores",
        failed_line_has_causes,
    ),
];

pub const WORKER: &str = env!("CARGO_BIN_EXE_dj-test-worker");

/// Starts `dj-test-worker ARGS` on the test database, logging to a file in its directory.
pub fn spawn_worker(t: &TestDb, label: &str, args: &[&str]) -> Child {
    spawn_bin(WORKER, t, label, args)
}

pub fn spawn_bin(bin: &str, t: &TestDb, label: &str, args: &[&str]) -> Child {
    spawn_bin_at(bin, t, label, &t.url, args)
}

/// Like [`spawn_bin`], on another URL of the test's database (with extra parameters, say).
pub fn spawn_bin_at(bin: &str, t: &TestDb, label: &str, url: &str, args: &[&str]) -> Child {
    spawn_with_env(bin, t, label, url, args, &[])
}

/// Like [`spawn_bin_at`], with these environment variables set.
pub fn spawn_with_env(
    bin: &str,
    t: &TestDb,
    label: &str,
    url: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Child {
    use std::os::unix::process::CommandExt as _;
    let out = File::create(t.dir.join(format!("{label}.log"))).expect("worker log");
    let mut command = Command::new(bin);
    // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        // A test that fails before it stops its workers must not leave them running: they
        // are killed when the test's thread ends.
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("QUEUES")
        .env_remove("QUEUE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup log"))
        .stderr(out)
        .spawn()
        .expect("start the worker binary")
}

/// The output a worker wrote so far.
pub fn worker_output(t: &TestDb, label: &str) -> String {
    std::fs::read_to_string(t.dir.join(format!("{label}.log"))).unwrap_or_default()
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("worker did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Enqueues a `Sleeps` job that records `start KEY`, sleeps `millis`, records `done KEY`.
pub fn sleeps(t: &TestDb, log: &PerformLog, key: &str, millis: u64) -> i64 {
    Sleeps {
        log: log.path(),
        key: key.into(),
        millis,
        max_run_time_secs: None,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap()
}

/// Sends TERM to workers started as `w0`, `w1`, ... and requires each to exit 0 within 30 s
/// (its log in the message if not).
pub fn stop_workers(t: &TestDb, workers: &mut [Child]) {
    for (i, w) in workers.iter_mut().enumerate() {
        signal(w, libc::SIGTERM);
        let status = wait_exit(w, Duration::from_secs(30));
        assert!(
            status.success(),
            "worker {i}: {status}\n{}",
            worker_output(t, &format!("w{i}"))
        );
    }
}

pub fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0, "signal the worker");
}

fn exactly_once(backend: Backend) {
    // The sizes: 4 processes × 2,000 jobs on PostgreSQL, 3 × 3,000 on SQLite.
    let (processes, per_process) = match backend {
        Backend::Postgres => (4, 2_000),
        Backend::Sqlite => (3, 3_000),
        Backend::Mysql => (4, 2_000),
    };
    let t = TestDb::new(backend, "exactlyonce");
    let log = t.log();
    let total = processes * per_process;
    dj::enqueue_many(
        &t.db,
        (0..total).map(|i| Record {
            log: log.path(),
            key: i.to_string(),
        }),
    )
    .unwrap();
    let mut workers: Vec<Child> = (0..processes)
        .map(|i| {
            spawn_worker(
                &t,
                &format!("w{i}"),
                &["workoff", "--concurrency", "2", "--read-ahead", "10"],
            )
        })
        .collect();
    for (i, w) in workers.iter_mut().enumerate() {
        let status = wait_exit(w, Duration::from_secs(300));
        assert!(
            status.success(),
            "worker {i}: {status}\n{}",
            worker_output(&t, &format!("w{i}"))
        );
    }
    let lines = log.lines();
    let mut counts = std::collections::HashMap::new();
    for line in &lines {
        *counts.entry(line.as_str()).or_insert(0) += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "performed more than once: {twice:?}");
    assert_eq!(counts.len(), total, "every job performed");
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
    // The work was shared: more than one process performed jobs.
    let busy = (0..processes)
        .filter(|i| worker_output(&t, &format!("w{i}")).contains("COMPLETED"))
        .count();
    assert!(busy > 1, "only {busy} process(es) did any work");
}

fn sigkill(backend: Backend) {
    let t = TestDb::new(backend, "sigkill");
    let log = t.log();
    let id = sleeps(&t, &log, "k", 1500);
    let mut a = spawn_worker(&t, "a", &["work", "--sleep-delay", "0.2"]);
    assert!(
        log.wait_for("start k", Duration::from_secs(20)),
        "worker a started the job"
    );
    signal(&a, libc::SIGKILL);
    wait_exit(&mut a, Duration::from_secs(10));
    let row = t.db.job(id).unwrap().unwrap();
    assert!(
        row.locked_by.is_some(),
        "the dead worker's lock is still there"
    );

    // Another worker on this host sees that the lock's process is gone, counts the attempt
    // and runs the job again after the backoff.
    let mut b = spawn_worker(
        &t,
        "b",
        &["work", "--sleep-delay", "0.2", "--rescue-interval", "0.5"],
    );
    let performed = log.wait_for("done k", Duration::from_secs(30));
    signal(&b, libc::SIGTERM);
    let status = wait_exit(&mut b, Duration::from_secs(30));
    assert!(
        performed,
        "the job was performed again\n{}",
        worker_output(&t, "b")
    );
    assert!(status.success());
    assert_eq!(log.count("start k"), 2);
    assert_eq!(log.count("done k"), 1);
    assert!(t.db.job(id).unwrap().is_none());
}

fn term_finishes_job(backend: Backend) {
    let t = TestDb::new(backend, "term");
    let log = t.log();
    let id = sleeps(&t, &log, "k", 1500);
    let mut w = spawn_worker(&t, "w", &["work", "--sleep-delay", "0.2"]);
    assert!(log.wait_for("start k", Duration::from_secs(20)));
    signal(&w, libc::SIGTERM);
    let status = wait_exit(&mut w, Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", worker_output(&t, "w"));
    assert_eq!(log.count("done k"), 1, "the running job finished");
    assert!(t.db.job(id).unwrap().is_none(), "and was deleted");
    // The last line names the worker, as every other line does.
    let out = worker_output(&t, "w");
    let exiting = out.lines().find(|l| l.contains("Exiting...")).expect(&out);
    assert!(exiting.contains("[Worker(host:"), "{exiting}");
}

fn poison_pill(backend: Backend) {
    let t = TestDb::new(backend, "poison");
    let log = t.log();
    let id = KillsWorker { log: log.path() }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    // Each worker dies performing it; the next one frees it. The first death comes before the
    // start was recorded, so it is released uncharged but marked as a crash; from then on its
    // start is recorded before it runs, and each death counts an attempt (max_attempts = 2).
    let row = until_the_pill_fails(&t, id, 5);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.crashes, 1, "{row:?}");
    assert_eq!(log.count("perform"), 3, "max_attempts + 1 runs, never more");
}

/// The same poison pill behind 30 short jobs: after the first of them the worker knows the
/// pace and claims the rest, the pill included, in a fast lane (PostgreSQL), whose death leaves
/// no lock behind, only the lane's record. The rescuer counts a crash for the jobs it names
/// still there, at the next worker's start; the pill then takes the ordinary claim and runs
/// out of attempts as above. The short jobs all run (those the dead lane had finished run again: at-least-once).
fn poison_pill_in_a_lane(backend: Backend) {
    let t = TestDb::new(backend, "poison lane");
    let log = t.log();
    dj::enqueue_many(
        &t.db,
        (0..30).map(|i| {
            Record {
                log: log.path(),
                key: format!("r{i}"),
            }
            .delay()
        }),
    )
    .unwrap();
    let id = KillsWorker { log: log.path() }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    let row = until_the_pill_fails(&t, id, 8);
    assert_eq!(row.attempts, 2, "{row:?}");
    assert!(row.crashes >= 1, "{row:?}");
    if backend == Backend::Postgres {
        // The pill died in a lane, and the next worker counted its crash from the lane's
        // record before it claimed anything.
        let rescued = (0..8).any(|round| {
            worker_output(&t, &format!("w{round}"))
                .contains("job(s) of fast lanes whose workers died")
        });
        assert!(rescued, "the pill was claimed in a fast lane");
    }
    // The last worker was stopped as soon as the pill failed: one more works off the rest.
    let mut w = spawn_worker(&t, "rest", &["workoff"]);
    wait_exit(&mut w, Duration::from_secs(30));
    for i in 0..30 {
        assert!(log.count(&format!("perform r{i}")) >= 1, "r{i} ran");
    }
    assert_eq!(
        t.query_i64("SELECT count(*) FROM delayed_jobs"),
        1,
        "only the pill is left"
    );
}

/// Starts worker processes one after another, each until the poison pill `id` kills it, until
/// the pill has failed for good (at most `rounds` workers); its row then.
fn until_the_pill_fails(t: &TestDb, id: dj::JobId, rounds: usize) -> dj::JobRow {
    let args = [
        "work",
        "--sleep-delay",
        "0.2",
        "--heartbeat-timeout",
        "3s",
        "--keep-failed",
    ];
    let mut row = t.db.job(id).unwrap().unwrap();
    for round in 0..rounds {
        let mut w = spawn_worker(t, &format!("w{round}"), &args);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            row = t.db.job(id).unwrap().unwrap();
            if row.failed_at.is_some() || Instant::now() > deadline {
                signal(&w, libc::SIGTERM);
                wait_exit(&mut w, Duration::from_secs(30));
                break;
            }
            if let Some(status) = w.try_wait().unwrap() {
                assert!(!status.success(), "the job killed worker {round}");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if row.failed_at.is_some() {
            break;
        }
    }
    assert!(row.failed_at.is_some(), "failed permanently: {row:?}");
    row
}

fn duplicate_names(backend: Backend) {
    let t = TestDb::new(backend, "dupnames");
    let mut w = spawn_bin(env!("CARGO_BIN_EXE_dj-dup-worker"), &t, "dup", &["workoff"]);
    let status = wait_exit(&mut w, Duration::from_secs(30));
    assert!(!status.success());
    let out = worker_output(&t, "dup");
    assert!(
        out.contains("two job types are registered as `Twin`"),
        "{out}"
    );
    assert!(
        out.contains("dj_dup_worker::first::One") && out.contains("dj_dup_worker::second::Two"),
        "{out}"
    );
}

fn workoff_exit_code(backend: Backend) {
    let t = TestDb::new(backend, "exitcode");
    let log = t.log();
    Record {
        log: log.path(),
        key: "ok".into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let mut w = spawn_worker(&t, "ok", &["workoff"]);
    assert!(wait_exit(&mut w, Duration::from_secs(30)).success());
    let out = worker_output(&t, "ok");
    assert!(out.contains("Starting job worker"), "{out}");
    assert!(out.contains("Job Record (id="), "{out}");
    assert!(out.contains("COMPLETED after"), "{out}");
    assert!(out.contains("1 jobs processed at"), "{out}");
    assert!(out.contains("No more jobs available. Exiting"), "{out}");

    dj_tests::jobs::GivesUp { log: log.path() }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    let mut w = spawn_worker(&t, "bad", &["workoff"]);
    let status = wait_exit(&mut w, Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", worker_output(&t, "bad"));
    assert!(worker_output(&t, "bad").contains("FAILED permanently"));
}

/// A failure's log line says what `last_error` stores, the causes included: a driver's error
/// (`postgres::Error`) said only "db error", the server's message being its cause.
fn failed_line_has_causes(backend: Backend) {
    let t = TestDb::new(backend, "causes");
    let log = t.log();
    let id = dj_tests::jobs::AlwaysFails {
        log: log.path(),
        key: "feed-7".into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let mut w = spawn_worker(&t, "w", &["workoff"]);
    wait_exit(&mut w, Duration::from_secs(30));
    let out = worker_output(&t, "w");
    let line = out
        .lines()
        .find(|l| l.contains("FAILED (0 prior attempts)"))
        .unwrap_or_else(|| panic!("no FAILED line:\n{out}"));
    assert!(
        line.contains("could not fetch feed-7; caused by: connection refused"),
        "{line}"
    );
    let stored = t.db.job(id).unwrap().expect("the retried row").last_error;
    assert_eq!(
        stored.as_deref(),
        Some("could not fetch feed-7\ncaused by: connection refused")
    );
}
