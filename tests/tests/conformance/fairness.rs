//! Fairness: jobs with a key (`#[job(fairness_key = "tenant")]`, or any concurrency key) are
//! claimed round-robin between keys, so that one tenant's backlog does not hold another's job
//! behind it. Two worker processes work off tenant A's 50,000 jobs; tenant B's one job,
//! enqueued once they are under way, starts within a few claims.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dj::Job;
use dj_tests::jobs::{Sleeps, Stamp, TenantJob};
use dj_tests::support::{Backend, TestDb};

use crate::operations::wait_until;
use crate::processes::{spawn_worker, stop_workers, worker_output};
use crate::rates::{micros, stamps};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "a_tenants_one_job_starts_within_a_few_claims_of_another_tenants_50000",
        one_among_fifty_thousand,
    ),
    ("an_empty_key_is_refused_at_enqueue", empty_key),
    (
        "priority_aging_raises_a_starved_job_past_a_stream_of_better_ones",
        aging,
    ),
];

/// A job of priority 5 behind 3,000 of priority 0 on one executor: with `--priority-aging 1s`
/// it gains a step a second and, at 0 and older than all of them, starts after about five
/// seconds, with most of the stream still waiting; its row shows the raised priority.
fn aging(backend: Backend) {
    let t = TestDb::new(backend, "aging");
    let log = t.log();
    let low = Stamp {
        log: log.path(),
        key: "low".into(),
    }
    .delay()
    .queue("reports")
    .priority(5)
    .enqueue(&t.db)
    .unwrap();
    let stream = (0..3_000).map(|i| {
        Sleeps {
            log: log.path(),
            key: i.to_string(),
            millis: 5,
            max_run_time_secs: None,
        }
        .delay()
        .queue("reports")
    });
    dj::enqueue_many(&t.db, stream).unwrap();
    let args = [
        "work",
        "--priority-aging",
        "1s",
        "--heartbeat-timeout",
        "3s",
        "--sleep-delay",
        "0.2",
    ];
    let mut workers = [spawn_worker(&t, "w0", &args)];
    let started = Instant::now();
    let mut seen = BTreeSet::new();
    let ran = wait_until(Duration::from_secs(30), || {
        if let Some(row) = t.db.job(low).unwrap() {
            seen.insert(row.priority);
        }
        log.count_prefix("stamp low ") == 1
    });
    let waited = started.elapsed();
    let behind = t.query_i64("SELECT count(*) FROM delayed_jobs WHERE locked_at IS NULL");
    stop_workers(&t, &mut workers);
    assert!(
        ran,
        "the starved job did not run\n{}",
        worker_output(&t, "w0")
    );
    println!(
        "{}: the priority-5 job ran after {waited:?} behind a stream of priority 0 ({behind} \
         of 3,000 still waiting), its priority seen at {seen:?}",
        backend.name()
    );
    assert!(behind > 1_000, "the stream had drained ({behind} left)");
    assert!(
        seen.contains(&3) && seen.contains(&1),
        "it climbed a step at a time: {seen:?}"
    );
    assert!(
        worker_output(&t, "w0").contains("Raised the priority of 1 job(s)"),
        "{}",
        worker_output(&t, "w0")
    );
}

/// A key the claims' walk of keys could not reach (they start after the empty string) is
/// refused, whichever builder gives it; nothing is stored.
fn empty_key(backend: Backend) {
    let t = TestDb::new(backend, "empty_key");
    let job = || TenantJob {
        log: String::new(),
        tenant: "a".into(),
        key: "k".into(),
    };
    let refusals = [
        job().delay().fairness_key("").enqueue(&t.db),
        job().delay().concurrency_key("", 1).enqueue(&t.db),
        job().delay().sequence("").enqueue(&t.db),
        job()
            .delay()
            .rate_key("", dj::Rate::per_second(1).unwrap())
            .enqueue(&t.db),
    ];
    for refused in refusals {
        match refused {
            Err(dj::Error::Invalid(message)) => {
                assert!(
                    message.contains("key") && message.contains("is empty"),
                    "{message}"
                )
            }
            other => panic!("an empty key was not refused: {other:?}"),
        }
    }
    assert_eq!(t.db.count_jobs(&dj::JobFilter::default()).unwrap(), 0);
}

/// Tenant A's 50,000 jobs in one queue with mixed priorities are under way on two workers
/// when tenant B enqueues one at the lowest of those priorities: B's job is claimed within
/// three claims (a claim is one `locked_at`, the claim statement's time), while tens of
/// thousands of A's wait.
fn one_among_fifty_thousand(backend: Backend) {
    let t = TestDb::new(backend, "fairness");
    let log = t.log();
    const A: usize = 50_000;
    for slice in 0..(A / 10_000) {
        let jobs = (slice * 10_000..(slice + 1) * 10_000).map(|i| {
            TenantJob {
                log: log.path(),
                tenant: "a".into(),
                key: i.to_string(),
            }
            .delay()
            .queue("reports")
            .priority((i % 2) as i32)
        });
        dj::enqueue_many(&t.db, jobs).unwrap();
    }
    let args = ["work", "--concurrency", "4", "--sleep-delay", "1"];
    let mut workers: Vec<_> = (0..2)
        .map(|i| spawn_worker(&t, &format!("w{i}"), &args))
        .collect();
    let under_way = wait_until(Duration::from_secs(60), || {
        log.count_prefix("tenant a ") >= 2_000
    });
    let b = TenantJob {
        log: log.path(),
        tenant: "b".into(),
        key: "only".into(),
    }
    .delay()
    .queue("reports")
    .priority(1)
    .enqueue(&t.db)
    .unwrap();
    // By the database's clock, as the claims are stamped: every claim made after this could
    // see B's committed row (a claim made while the insert waited for SQLite's write lock, or
    // alongside its commit on PostgreSQL, could not).
    let enqueued_at = micros(t.db.now().unwrap());
    let started = Instant::now();
    let ran = wait_until(Duration::from_secs(30), || {
        log.count_prefix("tenant b ") == 1
    });
    let waited = started.elapsed();
    let waiting = t.query_i64("SELECT count(*) FROM delayed_jobs WHERE locked_at IS NULL");
    stop_workers(&t, &mut workers);
    let output = || {
        (0..2)
            .map(|i| worker_output(&t, &format!("w{i}")))
            .collect::<String>()
    };
    assert!(under_way, "tenant A's jobs did not start\n{}", output());
    assert!(
        ran,
        "tenant B's job {b} did not run within 30 s\n{}",
        output()
    );

    let (b_claimed, _) = stamps(&log, "tenant b ")[0];
    let a = stamps(&log, "tenant a ");
    // The claims made between B's enqueue and B's own (each claim's rows share its time).
    let claims_before: BTreeSet<i64> = a
        .iter()
        .map(|s| s.0)
        .filter(|&c| c > enqueued_at && c < b_claimed)
        .collect();
    let a_before = a
        .iter()
        .filter(|s| s.0 > enqueued_at && s.0 < b_claimed)
        .count();
    println!(
        "{}: tenant B's job was claimed {:.1} ms after its enqueue returned (waited {waited:?}), \
         after {} claims of tenant A's ({a_before} jobs), with {waiting} of A's still waiting",
        backend.name(),
        (b_claimed - enqueued_at).max(0) as f64 / 1e3,
        claims_before.len(),
    );
    assert!(waiting > 10_000, "A's backlog was {waiting} jobs");
    assert!(
        claims_before.len() <= 3,
        "B waited {} claims ({a_before} of A's jobs)",
        claims_before.len()
    );
}
