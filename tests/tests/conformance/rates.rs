//! Rate limits: at most N starts per period, per key and per queue, across worker processes,
//! counted at the claim (the database's clock), never an attempt. Three workers against
//! `#[job(rate = "20/s")]` for 30 s; rates set at run time (`Db`, `worker rate`) and on the
//! builder, beside jobs no rate holds back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dj::{Job, Rate};
use dj_tests::jobs::{CallPartner, Stamp};
use dj_tests::support::{Backend, PerformLog, TestDb};

use crate::operations::{dj, stdout};
use crate::processes::{spawn_worker, stop_workers, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "a_rate_of_20_a_second_holds_across_three_workers_for_30_seconds",
        twenty_a_second,
    ),
    (
        "rates_set_at_run_time_and_on_the_builder_limit_their_queue_and_key",
        set_at_run_time,
    ),
];

/// A job's stamps from the log (`dj_tests::jobs`' `stamp`): `(claimed, started)` in
/// microseconds, for lines starting with `prefix`.
pub fn stamps(log: &PerformLog, prefix: &str) -> Vec<(i64, i64)> {
    let mut stamps: Vec<(i64, i64)> = log
        .lines()
        .iter()
        .filter(|l| l.starts_with(prefix))
        .map(|l| {
            let mut fields = l.rsplit(' ');
            let started = fields.next().unwrap().parse().unwrap();
            let claimed = fields.next().unwrap().parse().unwrap();
            (claimed, started)
        })
        .collect();
    stamps.sort();
    stamps
}

/// The most of `times` (sorted, microseconds) in any half-open window `[t, t + width)`.
fn most_within(times: &[i64], width: i64) -> usize {
    let mut most = 0;
    let mut first = 0;
    for (last, &t) in times.iter().enumerate() {
        while times[first] + width <= t {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

fn sorted(mut times: Vec<i64>) -> Vec<i64> {
    times.sort();
    times
}

/// 1,000 calls to one partner at 20 a second, spread over ten named queues and three
/// priorities, beside 100 to another partner (its own budget) and 300 jobs with no rate:
/// three worker processes start 600 ± a few of the first partner's in the 30 s from its first
/// start, never more than 20 in any second by the claims' clock; the other partner's and the
/// unlimited jobs are not held back by them; no held job counts an attempt.
fn twenty_a_second(backend: Backend) {
    let t = TestDb::new(backend, "rate_twenty");
    let log = t.log();
    let calls = (0..1_000).map(|i| {
        CallPartner {
            log: log.path(),
            partner: "api".into(),
            key: i.to_string(),
        }
        .delay()
        .queue(format!("q{}", i % 10))
        .priority(i % 3)
    });
    dj::enqueue_many(&t.db, calls).unwrap();
    let others = (0..100).map(|i| {
        CallPartner {
            log: log.path(),
            partner: "other".into(),
            key: i.to_string(),
        }
        .delay()
        .queue(format!("q{}", i % 10))
    });
    dj::enqueue_many(&t.db, others).unwrap();
    let free = (0..300).map(|i| {
        Stamp {
            log: log.path(),
            key: i.to_string(),
        }
        .delay()
        .queue(format!("q{}", i % 10))
        .priority(i % 3)
    });
    dj::enqueue_many(&t.db, free).unwrap();

    let args = ["work", "--concurrency", "4", "--sleep-delay", "5"];
    let mut workers: Vec<_> = (0..3)
        .map(|i| spawn_worker(&t, &format!("w{i}"), &args))
        .collect();
    let started = Instant::now();
    let mut attempts_while_held = 0;
    while started.elapsed() < Duration::from_secs(33) {
        std::thread::sleep(Duration::from_secs(1));
        attempts_while_held = attempts_while_held
            .max(t.query_i64("SELECT count(*) FROM delayed_jobs WHERE attempts > 0"));
    }
    stop_workers(&t, &mut workers);
    let output = || {
        (0..3)
            .map(|i| worker_output(&t, &format!("w{i}")))
            .collect::<String>()
    };

    let api = stamps(&log, "call api ");
    let first = api
        .first()
        .map(|s| s.0)
        .expect("the partner's calls started");
    let claims = sorted(api.iter().map(|s| s.0).collect());
    let in_30s = claims.iter().filter(|&&c| c < first + 30_000_000).count();
    let most = most_within(&claims, 1_000_000);
    let mut lags: Vec<i64> = api.iter().map(|s| s.1 - s.0).collect();
    lags.sort();
    let most_performed = most_within(&sorted(api.iter().map(|s| s.1).collect()), 1_000_000);
    println!(
        "{}: {in_30s} calls started in the 30 s from the first (a rate of 20/s: 600), at most \
         {most} claimed in any second; perform began {} µs after the claim (median; at most {} \
         µs), so at most {most_performed} began perform in any second",
        backend.name(),
        lags[lags.len() / 2],
        lags[lags.len() - 1],
    );
    // Each refill is claimed a few milliseconds after it falls due, so the windows drift
    // later: a whole period's 20 would be lost only past 34 ms a period.
    assert!(
        (580..=600).contains(&in_30s),
        "{in_30s} starts in 30 s at 20 a second\n{}",
        output()
    );
    assert!(most <= 20, "{most} claims within one second");
    assert_eq!(attempts_while_held, 0, "a held job counted an attempt");

    let other = stamps(&log, "call other ");
    assert_eq!(other.len(), 100, "the other partner has its own budget");
    let other_done = other.iter().map(|s| s.0).max().unwrap();
    assert!(
        other_done - other[0].0 < 6_000_000,
        "the other partner's 100 calls at 20/s took {} µs",
        other_done - other[0].0
    );
    assert!(
        most_within(&sorted(other.iter().map(|s| s.0).collect()), 1_000_000) <= 20,
        "the other partner's calls kept their rate"
    );
    let free = stamps(&log, "stamp ");
    assert_eq!(free.len(), 300, "jobs with no rate all ran");
    let free_done = free.iter().map(|s| s.0).max().unwrap();
    assert!(
        free_done - first < 5_000_000,
        "jobs with no rate waited for the rate-limited ones ({} µs)",
        free_done - first
    );
}

/// A queue's rate set with `Db::rate_limit_queue`, a key's replaced with `worker rate --key`,
/// and a key's rate given on the builder (`rate_key`) each hold their jobs to their rate
/// across two workers; `worker rate` lists them; removing the queue's lets it drain at once.
fn set_at_run_time(backend: Backend) {
    let t = TestDb::new(backend, "rate_run_time");
    let log = t.log();
    let stamp = |key: String| Stamp {
        log: log.path(),
        key,
    };
    dj::enqueue_many(
        &t.db,
        (0..200).map(|i| stamp(format!("bulk {i}")).delay().queue("bulk")),
    )
    .unwrap();
    assert!(t
        .db
        .rate_limit_queue("bulk", Some("10/s".parse().unwrap()))
        .unwrap());
    let builder_rate = Rate::new(3, Duration::from_millis(500)).unwrap();
    dj::enqueue_many(
        &t.db,
        (0..100).map(|i| {
            stamp(format!("keyed {i}"))
                .delay()
                .queue("other")
                .rate_key("partner-x", builder_rate)
        }),
    )
    .unwrap();
    let slow = (0..100).map(|i| CallPartner {
        log: log.path(),
        partner: "slow".into(),
        key: i.to_string(),
    });
    dj::enqueue_many(&t.db, slow).unwrap();
    let key: String =
        t.db.jobs(&dj::JobFilter {
            name: Some("CallPartner".into()),
            limit: Some(1),
            ..Default::default()
        })
        .unwrap()[0]
            .concurrency_key
            .clone()
            .unwrap();
    let set = stdout(&dj(&t, &["rate", "--key", &key, "4/s"]));
    assert!(set.contains("at most 4/s starts"), "{set}");
    let listed = stdout(&dj(&t, &["rate"]));
    assert!(
        listed.contains("queue bulk: at most 10/s starts")
            && listed.contains(&format!("key {key}: at most 4/s starts")),
        "{listed}"
    );

    let args = ["work", "--concurrency", "4", "--sleep-delay", "5"];
    let mut workers: Vec<_> = (0..2)
        .map(|i| spawn_worker(&t, &format!("w{i}"), &args))
        .collect();
    std::thread::sleep(Duration::from_secs(6));
    let cutoff = now_micros();
    let removed = stdout(&dj(&t, &["rate", "--queue", "bulk", "none"]));
    assert!(removed.contains("rate limit removed"), "{removed}");
    let drained = crate::operations::wait_until(Duration::from_secs(10), || {
        stamps(&log, "stamp bulk ").len() == 200
    });
    stop_workers(&t, &mut workers);
    let output = || {
        (0..2)
            .map(|i| worker_output(&t, &format!("w{i}")))
            .collect::<String>()
    };
    assert!(
        drained,
        "the queue drains once its rate is removed\n{}",
        output()
    );

    // Claims before the queue's rate was removed, from the first claim of any of them.
    let all = stamps(&log, "");
    let first = all.iter().map(|s| s.0).min().unwrap();
    let window = (cutoff - first) as f64 / 1e6;
    let claims = |prefix: &str| -> Vec<i64> {
        sorted(
            stamps(&log, prefix)
                .iter()
                .map(|s| s.0)
                .filter(|&c| c < cutoff)
                .collect(),
        )
    };
    let (bulk, keyed, slow) = (
        claims("stamp bulk "),
        claims("stamp keyed "),
        claims("call slow "),
    );
    let most: BTreeMap<&str, usize> = [
        ("bulk", most_within(&bulk, 1_000_000)),
        ("keyed", most_within(&keyed, 500_000)),
        ("slow", most_within(&slow, 1_000_000)),
    ]
    .into();
    println!(
        "{}: in {window:.1} s, {} of the queue at 10/s, {} of the builder's key at 3/500ms, {} of \
         the key at 4/s; the most in any one period: {most:?}",
        backend.name(),
        bulk.len(),
        keyed.len(),
        slow.len()
    );
    assert!(most["bulk"] <= 10, "{most:?}");
    assert!(most["keyed"] <= 3, "{most:?}");
    assert!(most["slow"] <= 4, "{most:?}");
    // Each rate's periods in the window, a period's starts each (the first at once), give or
    // take one period's.
    for (name, got, starts, period) in [
        ("the queue", bulk.len(), 10.0, 1.0),
        ("the builder's key", keyed.len(), 3.0, 0.5),
        ("the key", slow.len(), 4.0, 1.0),
    ] {
        let expected = starts * ((window / period).floor() + 1.0);
        assert!(
            (got as f64) <= expected && (got as f64) >= expected - 3.0 * starts,
            "{got} starts of {name} in {window:.2} s at {starts}/{period}s (expected {expected})\n{}",
            output()
        );
    }
}

pub fn now_micros() -> i64 {
    micros(std::time::SystemTime::now())
}

/// A time as unix microseconds, as the stamps are.
pub fn micros(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}
