//! Failures with real processes, bounded in count and time: workers killed mid-drain, a poison
//! pill among bystanders, a worker frozen with SIGSTOP, and (PostgreSQL) every backend of the
//! workers terminated mid-drain. Every case counts performs in a log, not rows.

use std::collections::HashMap;
use std::process::Child;
use std::time::{Duration, Instant};

use dj::JobFilter;
use dj_tests::jobs::{Bystander, PoisonPill, Record};
use dj_tests::support::{Backend, PerformLog, TestDb};

use crate::operations::wait_until;
use crate::processes::{signal, spawn_bin_at, spawn_worker, wait_exit, worker_output};
use crate::Case;

const WORKER: &str = env!("CARGO_BIN_EXE_dj-test-worker");

pub const CASES: &[Case] = &[
    (
        "chaos_sigkill_every_2s_while_5000_jobs_drain_loses_nothing",
        sigkill_loop,
    ),
    (
        "chaos_poison_pill_fails_and_every_bystander_runs_once_uncharged",
        pill_among_bystanders,
    ),
    (
        "chaos_frozen_workers_jobs_run_elsewhere_and_it_records_nothing_after",
        frozen_worker,
    ),
];

pub const POSTGRES_CASES: &[Case] = &[(
    "chaos_backends_terminated_mid_drain_lose_nothing",
    terminated_backends,
)];

fn bystanders(t: &TestDb, log: &PerformLog, n: usize, millis: u64) {
    dj::enqueue_many(
        &t.db,
        (0..n).map(|i| Bystander {
            log: log.path(),
            key: format!("b{i}"),
            millis,
        }),
    )
    .unwrap();
}

/// `start KEY attempts N` lines by key: the attempts each perform saw.
fn starts(log: &PerformLog) -> HashMap<String, Vec<u32>> {
    let mut starts: HashMap<String, Vec<u32>> = HashMap::new();
    for line in log.lines() {
        let mut words = line.split_whitespace();
        if let (Some("start"), Some(key), Some("attempts"), Some(n)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            starts
                .entry(key.to_owned())
                .or_default()
                .push(n.parse().unwrap());
        }
    }
    starts
}

fn done_count(log: &PerformLog, key: &str) -> usize {
    log.count(&format!("done {key}"))
}

fn table_empty(t: &TestDb) -> bool {
    t.db.count_jobs(&JobFilter::default()).unwrap() == 0
}

/// TERM once the worker is up (a TERM before its handlers are installed would kill it).
fn stop(t: &TestDb, child: &mut Child, label: &str) {
    assert!(
        wait_until(Duration::from_secs(20), || worker_output(t, label)
            .contains("Starting job worker")),
        "{label} started\n{}",
        worker_output(t, label)
    );
    signal(child, libc::SIGTERM);
    let status = wait_exit(child, Duration::from_secs(40));
    assert!(
        status.success(),
        "{label}: {status}\n{}",
        worker_output(t, label)
    );
}

const FAST: &[&str] = &["--sleep-delay", "0.2", "--heartbeat-timeout", "3s"];

fn work_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["work"];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    args
}

fn sigkill_loop(backend: Backend) {
    let t = TestDb::new(backend, "chaoskill");
    let log = t.log();
    let n = 5_000;
    bystanders(&t, &log, n, 20);
    let args = work_args(&["--concurrency", "4", "--read-ahead", "20"]);
    let started = Instant::now();
    let mut kills = 0;
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(30) && !table_empty(&t) {
        let label = format!("k{round}");
        let mut w = spawn_worker(&t, &label, &args);
        std::thread::sleep(Duration::from_millis(2_000));
        signal(&w, libc::SIGKILL);
        wait_exit(&mut w, Duration::from_secs(10));
        kills += 1;
        round += 1;
    }
    assert!(kills >= 5, "only {kills} kills before the table drained");
    let mut last = spawn_worker(&t, "last", &args);
    let drained = wait_until(Duration::from_secs(120), || table_empty(&t));
    stop(&t, &mut last, "last");
    assert!(drained, "the table drained\n{}", worker_output(&t, "last"));
    let missing: Vec<usize> = (0..n)
        .filter(|i| done_count(&log, &format!("b{i}")) == 0)
        .collect();
    assert!(missing.is_empty(), "never performed: {missing:?}");
    eprintln!(
        "{}: {kills} SIGKILLs; {} performs for {n} jobs",
        backend.name(),
        log.lines()
            .iter()
            .filter(|l| l.starts_with("done "))
            .count()
    );
}

fn pill_among_bystanders(backend: Backend) {
    let t = TestDb::new(backend, "chaospill");
    let log = t.log();
    let pill = PoisonPill { log: log.path() };
    let pill_id = dj::Job::delay(pill).enqueue(&t.db).unwrap();
    bystanders(&t, &log, 20, 50);
    let mut pool = spawn_worker(
        &t,
        "pool",
        &[
            "start",
            "-n",
            "2",
            "--sleep-delay",
            "0.2",
            "--heartbeat-timeout",
            "3s",
            "--read-ahead",
            "10",
            "--keep-failed",
        ],
    );
    let finished = wait_until(Duration::from_secs(90), || {
        let pill_failed =
            t.db.job(pill_id)
                .unwrap()
                .is_some_and(|r| r.failed_at.is_some());
        pill_failed && t.db.count_jobs(&JobFilter::default()).unwrap() == 1
    });
    stop(&t, &mut pool, "pool");
    let row = t.db.job(pill_id).unwrap().unwrap();
    assert!(
        finished,
        "pill failed and bystanders done: {row:?}\n{}",
        worker_output(&t, "pool")
    );
    assert_eq!(row.attempts, 3, "the pill ran out of attempts: {row:?}");
    assert_eq!(log.count("pill"), 4, "max_attempts + 1 runs");
    let starts = starts(&log);
    for i in 0..20 {
        let key = format!("b{i}");
        assert_eq!(
            starts.get(&key).map(Vec::as_slice),
            Some(&[0][..]),
            "{key} ran once and was never charged for the pill's deaths"
        );
        assert_eq!(done_count(&log, &key), 1, "{key}");
    }
}

fn frozen_worker(backend: Backend) {
    let t = TestDb::new(backend, "chaosfreeze");
    let log = t.log();
    // Two long jobs that worker A starts (long enough that A wakes before they end, even on
    // a loaded machine), and short ones it holds unstarted (read-ahead).
    for key in ["s1", "s2"] {
        dj::Job::delay(Bystander {
            log: log.path(),
            key: key.into(),
            millis: 6_000,
        })
        .enqueue(&t.db)
        .unwrap();
    }
    bystanders(&t, &log, 3, 10);
    // Quick jobs first, so that A has seen the pace of short work and reads ahead (the
    // read-ahead follows the pace: a worker that has seen nothing finish reads none).
    dj::enqueue_many(
        &t.db,
        (0..20).map(|i| {
            dj::Job::delay(Record {
                log: log.path(),
                key: format!("warm{i}"),
            })
            .priority(-10)
        }),
    )
    .unwrap();
    let mut a = spawn_worker(
        &t,
        "a",
        &work_args(&["--concurrency", "2", "--read-ahead", "3"]),
    );
    // A holds what it took: its two started jobs, and, once its refill after them is in (a
    // claim's round trip later, or half a lane's window once its executors are found busy
    // with long jobs), at least one of the short ones unstarted (the refill waits for half
    // the capacity, so one or two may be left for B).
    let held_by_a = || {
        let rows = t.db.jobs(&JobFilter::default()).unwrap();
        let a_name = rows
            .iter()
            .find(|r| r.started_at.is_some())?
            .locked_by
            .clone()?;
        let held = rows
            .iter()
            .filter(|r| r.locked_by.as_deref() == Some(&a_name))
            .count();
        Some((a_name, held))
    };
    let ready = wait_until(Duration::from_secs(20), || {
        starts(&log).len() == 2
            && t.db.count_jobs(&JobFilter::default()).unwrap() == 5
            && t.db
                .jobs(&JobFilter::default())
                .unwrap()
                .iter()
                .filter(|r| r.started_at.is_some())
                .count()
                == 2
            && held_by_a().is_some_and(|(_, held)| held >= 3)
    });
    let (a_name, held) = held_by_a().unwrap_or_default();
    assert!(
        ready && (3..=5).contains(&held),
        "A holds two started jobs and at least one unstarted: {held}; rows (id, locked_by, \
         started) {:?}\n{}",
        t.db.jobs(&JobFilter::default())
            .unwrap()
            .iter()
            .map(|r| (r.id, r.locked_by.clone(), r.started_at.is_some()))
            .collect::<Vec<_>>(),
        worker_output(&t, "a")
    );
    signal(&a, libc::SIGSTOP);
    let frozen_at = Instant::now();

    let mut b = spawn_worker(
        &t,
        "b",
        &work_args(&["--concurrency", "2", "--read-ahead", "0"]),
    );
    let moved = wait_until(Duration::from_secs(20), || {
        starts(&log).get("s1").is_some_and(|s| s.len() == 2)
    });
    let elapsed = frozen_at.elapsed();
    assert!(moved, "s1 ran elsewhere\n{}", worker_output(&t, "b"));
    eprintln!(
        "{}: freeze -> job running elsewhere: {:.2}s (heartbeat timeout 3s)",
        backend.name(),
        elapsed.as_secs_f64()
    );
    // The started jobs were charged one attempt; the unstarted ones none.
    assert!(wait_until(Duration::from_secs(10), || starts(&log)
        .get("s2")
        .is_some_and(|s| s.len() == 2)));
    assert_eq!(starts(&log)["s1"], [0, 1]);
    assert_eq!(starts(&log)["s2"], [0, 1]);

    // A wakes while B still runs s1: A's own runs finish, but nothing A writes lands.
    signal(&a, libc::SIGCONT);
    let a_returned = wait_until(Duration::from_secs(10), || {
        worker_output(&t, "a")
            .matches("its outcome is not recorded")
            .count()
            == 2
    });
    assert!(
        a_returned,
        "A saw it lost its jobs\n{}",
        worker_output(&t, "a")
    );
    let s1 =
        t.db.jobs(&JobFilter::default())
            .unwrap()
            .into_iter()
            .find(|r| r.handler.contains("\"s1\""));
    let s1 = s1.expect("s1 is still B's: A's completion did not delete it");
    assert_ne!(s1.locked_by.as_deref(), Some(a_name.as_str()));
    assert!(worker_output(&t, "a").contains("was declared dead"));

    assert!(wait_until(Duration::from_secs(30), || table_empty(&t)));
    stop(&t, &mut a, "a");
    stop(&t, &mut b, "b");
    let starts = starts(&log);
    for i in 0..3 {
        assert_eq!(
            starts[&format!("b{i}")],
            [0],
            "unstarted claims ran once, uncharged"
        );
    }
    let workers = t.db.workers().unwrap();
    assert!(workers.is_empty(), "both deregistered at exit: {workers:?}");
}

fn terminated_backends(backend: Backend) {
    let t = TestDb::new(backend, "chaosterm");
    let log = t.log();
    let n = 2_000;
    bystanders(&t, &log, n, 5);
    let app = format!("dj_chaos_{}", std::process::id());
    let url = format!("{}&application_name={app}", t.url);
    let mut w = spawn_bin_at(WORKER, &t, "w", &url, &work_args(&["--concurrency", "4"]));
    let mut client = t.pg_client();
    let mut terminated = 0;
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(800));
        let rows = client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .unwrap();
        terminated += rows.len();
    }
    let drained = wait_until(Duration::from_secs(120), || table_empty(&t));
    stop(&t, &mut w, "w");
    assert!(terminated >= 5, "terminated {terminated} backends");
    assert!(drained, "drained\n{}", worker_output(&t, "w"));
    let missing: Vec<usize> = (0..n)
        .filter(|i| done_count(&log, &format!("b{i}")) == 0)
        .collect();
    assert!(missing.is_empty(), "never performed: {missing:?}");
}
