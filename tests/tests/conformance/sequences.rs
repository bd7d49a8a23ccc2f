//! Sequences (`Delayed::sequence`): jobs with one key run one at a time across every worker,
//! in enqueue order whatever their priorities, the next waiting while the head retries; a
//! head that fails for good leaves the sequence and the next one runs.

use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

use dj::{Error, Job, JobFilter};
use dj_tests::jobs::{PostEntry, Record, Step};
use dj_tests::support::{Backend, TestDb};

use crate::operations::wait_until;
use crate::processes::{spawn_worker, stop_workers, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "sequences_of_500_jobs_over_4_processes_never_overlap_and_keep_order",
        four_processes,
    ),
    (
        "a_job_has_a_sequence_or_a_concurrency_key_not_both",
        sequence_or_key,
    ),
    (
        "a_types_sequence_attribute_runs_its_jobs_in_order",
        from_the_attribute,
    ),
];

/// The keys and their lengths: 500 steps in all.
const KEYS: [(&str, u32); 2] = [("account:1", 300), ("account:2", 200)];
/// Of `account:1`, the step that fails for good.
const FAILS_FOR_GOOD: u32 = 150;

fn four_processes(backend: Backend) {
    let t = TestDb::new(backend, "sequences");
    let log = t.log();
    // Interleaved keys, priorities that would reorder them if priorities counted within a
    // sequence, two queues; every 40th step fails once, one fails for good.
    let mut steps = Vec::new();
    for seq in 0..KEYS[0].1 {
        for &(key, len) in &KEYS {
            if seq >= len {
                continue;
            }
            let fail = match seq {
                FAILS_FOR_GOOD if key == KEYS[0].0 => 2,
                s if s % 40 == 39 => 1,
                _ => 0,
            };
            let step = Step {
                log: log.path(),
                key: key.to_owned(),
                seq,
                millis: 2,
                fail,
            };
            let delayed = step.delay().sequence(key).priority(((seq * 7) % 5) as i32);
            steps.push(if seq % 2 == 0 {
                delayed.queue("ledger")
            } else {
                delayed
            });
        }
    }
    dj::enqueue_many(&t.db, steps).unwrap();
    dj::enqueue_many(
        &t.db,
        (0..200).map(|i| Record {
            log: log.path(),
            key: format!("plain {i}"),
        }),
    )
    .unwrap();

    let mut workers: Vec<Child> = (0..4)
        .map(|i| {
            let args = ["work", "--concurrency", "2", "--sleep-delay", "0.1"];
            spawn_worker(&t, &format!("w{i}"), &args)
        })
        .collect();
    // Everything ran but the step that failed for good, which is kept.
    let done = wait_until(Duration::from_secs(180), || {
        t.db.count_jobs(&JobFilter::default()).unwrap() == 1
    });
    stop_workers(&t, &mut workers);
    let left = t.db.jobs(&JobFilter::default()).unwrap();
    assert!(done, "{} rows left: {left:?}", left.len());
    assert!(left[0].failed_at.is_some(), "{left:?}");

    let lines = log.lines();
    for &(key, len) in &KEYS {
        let mut expected: Vec<u32> = Vec::new();
        for seq in 0..len {
            expected.push(seq);
            if seq % 40 == 39 && !(key == KEYS[0].0 && seq == FAILS_FOR_GOOD) {
                expected.push(seq); // its retry
            }
        }
        check_sequence(key, &lines, &expected);
    }
    let mut plain: HashMap<&str, usize> = HashMap::new();
    for line in lines.iter().filter(|l| l.starts_with("perform plain")) {
        *plain.entry(line).or_default() += 1;
    }
    assert_eq!(plain.len(), 200, "every plain job ran");
    assert!(plain.values().all(|&n| n == 1), "{plain:?}");
    let busy = (0..4)
        .filter(|i| worker_output(&t, &format!("w{i}")).contains("Step"))
        .count();
    assert!(busy > 1, "only {busy} process(es) ran steps");
}

/// `key`'s log lines alternate `start SEQ` and `end SEQ` (never two starts: no overlap), and
/// the steps start in the order `expected` gives (a step failing once starts twice in a row).
fn check_sequence(key: &str, lines: &[String], expected: &[u32]) {
    let mut started = Vec::new();
    let mut open: Option<u32> = None;
    for line in lines {
        let Some((event, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some(seq) = rest
            .strip_prefix(key)
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            continue;
        };
        match (event, open) {
            ("start", None) => {
                open = Some(seq);
                started.push(seq);
            }
            ("start", Some(running)) => {
                panic!("{key}: step {seq} started while step {running} was running")
            }
            ("end", Some(running)) if running == seq => open = None,
            (event, running) => panic!("{key}: `{event} {seq}` while {running:?} was running"),
        }
    }
    assert_eq!(started, expected, "{key}: the order the steps started in");
}

/// A sequence is a kind of concurrency key: asking for both is refused at enqueue, saying so.
fn sequence_or_key(backend: Backend) {
    let t = TestDb::new(backend, "sequence_or_key");
    let step = Step {
        log: "/dev/null".into(),
        key: "k".into(),
        seq: 0,
        millis: 0,
        fail: 0,
    };
    let refused = step
        .delay()
        .sequence("k")
        .concurrency_key("k", 1)
        .enqueue(&t.db);
    match refused {
        Err(Error::Invalid(message)) => {
            assert!(message.contains("not both"), "{message}")
        }
        other => panic!("refused, not {other:?}"),
    }
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
}

/// `#[job(sequence = "account")]`: the rows carry the type's key as a sequence (limit 0), and
/// a worker runs each account's entries in enqueue order though their priorities say otherwise.
fn from_the_attribute(backend: Backend) {
    let t = TestDb::new(backend, "sequence_attribute");
    let log = t.log();
    for cents in 0..20 {
        PostEntry {
            log: log.path(),
            account: (cents % 2) as u32,
            cents,
        }
        .delay()
        .priority(-(cents as i32))
        .enqueue(&t.db)
        .unwrap();
    }
    assert_eq!(
        t.query_i64(
            "SELECT count(*) FROM delayed_jobs \
             WHERE concurrency_limit = 0 AND concurrency_key LIKE 'post_entry%'"
        ),
        20
    );
    let report = dj::Worker::new(t.db.clone())
        .concurrency(4)
        .work_off(100)
        .unwrap();
    assert_eq!(report.succeeded, 20, "{report:?}");
    for account in 0..2u32 {
        let posted: Vec<i64> = log
            .lines()
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("post {account} ")))
            .map(|cents| cents.parse().unwrap())
            .collect();
        let expected: Vec<i64> = (0..20).filter(|c| c % 2 == account as i64).collect();
        assert_eq!(posted, expected, "account {account}");
    }
}
