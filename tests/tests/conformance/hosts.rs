//! Several worker hosts against one PostgreSQL: each host a network namespace of its own with
//! a link to this machine (see `dj_tests::net::Hosts`), its workers real processes reaching the
//! database over that link. Exactly once across hosts (with the rate for 1, 2 and 3 hosts
//! printed), and a host whose link is cut mid-run: the others recover its jobs through the
//! liveness rule, and nothing is lost or recorded twice when the link comes back.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use dj::JobFilter;
use dj_tests::jobs::Bystander;
use dj_tests::net::Hosts;
use dj_tests::support::{postgres_base_url, Backend, PerformLog, TestDb};

use crate::operations::wait_until;
use crate::processes::{signal, wait_exit, worker_output};
use crate::Case;

const WORKER: &str = env!("CARGO_BIN_EXE_dj-test-worker");

pub const POSTGRES_CASES: &[Case] = &[
    (
        "hosts_three_hosts_perform_each_job_exactly_once",
        exactly_once,
    ),
    (
        "hosts_a_cut_hosts_jobs_are_recovered_by_the_others",
        cut_link,
    ),
];

/// The hosts, or `None` (with a note) where namespaces cannot be made; under CI they must be.
fn hosts(count: u8) -> Option<Hosts> {
    if let Err(e) = Hosts::available() {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !in_ci,
            "CI=true, but network namespaces cannot be made: {e}"
        );
        eprintln!("note: skipped, network namespaces cannot be made here: {e}");
        return None;
    }
    let config: postgres::Config = postgres_base_url().parse().unwrap();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    Some(Hosts::new(
        count,
        format!("127.0.0.1:{port}").parse().unwrap(),
    ))
}

/// A worker process in host `k`, on the test database reached over that host's link.
fn worker_in(hosts: &Hosts, k: usize, t: &TestDb, label: &str, extra: &[&str]) -> Child {
    let config: postgres::Config = postgres_base_url().parse().unwrap();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let url = t
        .url
        .replacen(&format!("127.0.0.1:{port}"), &hosts.database_addr(k), 1)
        + "&statement_timeout=2s&connect_timeout=2";
    let out = std::fs::File::create(t.dir.join(format!("{label}.log"))).unwrap();
    hosts
        .command(k, WORKER)
        .args(["work", "--sleep-delay", "0.2", "--name-prefix", label])
        .args(extra)
        .env("DATABASE_URL", url)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start a worker in its host")
}

fn enqueue(t: &TestDb, log: &PerformLog, prefix: &str, n: usize, millis: u64) {
    dj::enqueue_many(
        &t.db,
        (0..n).map(|i| Bystander {
            log: log.path(),
            key: format!("{prefix}{i}"),
            millis,
        }),
    )
    .unwrap();
}

fn stop_all(t: &TestDb, workers: Vec<(String, Child)>) {
    for (_, child) in &workers {
        signal(child, libc::SIGTERM);
    }
    for (label, mut child) in workers {
        let status = wait_exit(&mut child, Duration::from_secs(30));
        assert!(
            status.success(),
            "{label}: {status}\n{}",
            worker_output(t, &label)
        );
    }
}

fn exactly_once(backend: Backend) {
    let Some(hosts) = hosts(3) else { return };
    let t = TestDb::new(backend, "hosts_exactly_once");
    const JOBS: usize = 10_000;
    for count in 1..=3 {
        let log = t.log();
        let prefix = format!("r{count}-");
        enqueue(&t, &log, &prefix, JOBS, 0);
        let started = Instant::now();
        let workers: Vec<(String, Child)> = (1..=count)
            .map(|k| {
                let label = format!("r{count}h{k}");
                let child = worker_in(&hosts, k, &t, &label, &["--concurrency", "2"]);
                (label, child)
            })
            .collect();
        let drained = wait_until(Duration::from_secs(120), || {
            t.db.count_jobs(&JobFilter::default()).unwrap() == 0
        });
        let took = started.elapsed();
        stop_all(&t, workers);
        assert!(drained, "{count} host(s) drained {JOBS} jobs");
        let mut done: std::collections::HashMap<String, usize> = Default::default();
        for line in log.lines() {
            if let Some(key) = line.strip_prefix("done ") {
                *done.entry(key.to_owned()).or_default() += 1;
            }
        }
        for i in 0..JOBS {
            assert_eq!(done.get(&format!("{prefix}{i}")), Some(&1), "{prefix}{i}");
        }
        println!(
            "{count} host(s), 2 executors each: {JOBS} jobs exactly once in {took:.2?} ({:.0} jobs/s, start-up included)",
            JOBS as f64 / took.as_secs_f64()
        );
    }
}

fn cut_link(backend: Backend) {
    let Some(hosts) = hosts(3) else { return };
    let t = TestDb::new(backend, "hosts_cut_link");
    let log = t.log();
    const JOBS: usize = 60;
    enqueue(&t, &log, "c", JOBS, 300);
    let liveness = ["--concurrency", "2", "--heartbeat-timeout", "3s"];
    let workers: Vec<(String, Child)> = (1..=3)
        .map(|k| {
            let label = format!("cut{k}");
            (label.clone(), worker_in(&hosts, k, &t, &label, &liveness))
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(30), || log.count_prefix("done ") >= 10),
        "the hosts started working: {}",
        worker_output(&t, "cut1")
    );
    // Cut host 1 while it runs jobs.
    let cut_name = |row: &dj::JobRow| {
        row.locked_by
            .as_deref()
            .is_some_and(|n| n.starts_with("cut1 "))
    };
    assert!(wait_until(Duration::from_secs(10), || {
        t.db.jobs(&JobFilter::default())
            .unwrap()
            .iter()
            .any(cut_name)
    }));
    hosts.cut(1);
    let cut_at = Instant::now();
    let held: Vec<i64> =
        t.db.jobs(&JobFilter::default())
            .unwrap()
            .iter()
            .filter(|r| cut_name(r))
            .map(|r| r.id)
            .collect();
    let drained = wait_until(Duration::from_secs(90), || {
        t.db.count_jobs(&JobFilter::default()).unwrap() == 0
    });
    println!(
        "host 1 cut holding {} job(s); the other hosts drained the queue {:.2?} after the cut",
        held.len(),
        cut_at.elapsed()
    );
    assert!(
        drained,
        "the other hosts finished: {}",
        worker_output(&t, "cut2")
    );
    hosts.restore(1);
    // Back, host 1 finds it was declared dead, records nothing for what it lost, and goes on.
    assert!(
        wait_until(Duration::from_secs(30), || worker_output(&t, "cut1")
            .contains("declared dead")),
        "host 1 noticed: {}",
        worker_output(&t, "cut1")
    );
    stop_all(&t, workers);
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
    for i in 0..JOBS {
        assert!(log.count(&format!("done c{i}")) >= 1, "c{i} was performed");
    }
}
