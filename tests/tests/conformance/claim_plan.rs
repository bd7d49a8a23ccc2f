//! The claim's plan on a real backlog: a million rows over 20 named queues and priorities
//! 0–4, in a database maintained the ordinary way (`delayed_jobs` analyzed, the side tables
//! `dj_paused_queues` and `dj_queue_limits` never analyzed, as autovacuum leaves a small
//! table). Every claim form must walk an index in claim order and touch a bounded number of
//! rows, whatever the statistics say: a plan that scans and sorts the backlog claimed 40 jobs
//! a second on such a table.

use std::time::{Duration, Instant};

use dj::Job;
use dj_tests::jobs::Sleeps;
use dj_tests::support::{Backend, TestDb};

use crate::Case;

pub const POSTGRES_CASES: &[Case] = &[
    (
        "claim_keeps_its_index_plan_on_a_named_queue_backlog",
        backlog_plans,
    ),
    (
        "a_job_ready_below_the_claims_floor_waits_at_most_the_rescan",
        floor_rescan_every_queue,
    ),
    (
        "a_job_ready_below_a_listed_queues_floor_waits_at_most_the_rescan",
        floor_rescan_listed_queues,
    ),
];

/// The table's size, and what any one node of a claim's plan may produce or filter out: a
/// tenth of it (the largest legitimate node, the limited claim's count of a limited queue's
/// running rows, reads one queue: a twentieth).
const ROWS: i64 = 1_000_000;
const BOUND: i64 = ROWS / 10;

fn backlog_plans(backend: Backend) {
    let t = TestDb::new(backend, "backlog plan");
    // Queues q00..q19, priorities independent of the queue; a twentieth scheduled ahead, some
    // failed, some running, some under a per-key limit.
    t.exec(&format!(
        "INSERT INTO delayed_jobs (name, handler, queue, priority, run_at, failed_at, locked_at, \
                                   locked_by, concurrency_key, concurrency_limit) \
         SELECT 'Record', '{{\"job\":\"Record\",\"args\":{{}}}}', \
                'q' || lpad((i % 20)::text, 2, '0'), (i / 20) % 5, \
                CASE WHEN i % 23 = 0 THEN now() + interval '1 hour' \
                     ELSE now() - interval '2 hours' + i * interval '1 ms' END, \
                CASE WHEN i % 50 = 0 THEN now() END, \
                CASE WHEN i % 97 = 0 THEN now() END, \
                CASE WHEN i % 97 = 0 THEN 'host:x pid:1' END, \
                CASE WHEN i % 101 = 0 THEN 'k' || (i % 10) END, \
                CASE WHEN i % 101 = 0 THEN 2 END \
         FROM generate_series(1, {ROWS}) AS i; \
         ANALYZE delayed_jobs; \
         INSERT INTO dj_workers (name, host, pid, version) VALUES ('me', 'x', 1, 'test');"
    ));
    let mut client = t.pg_client();
    client
        .batch_execute(&format!(
            "PREPARE claim(text, int4, int4, int8) AS {}; \
             PREPARE claim_queues(text, int4, int4, int8, text[]) AS {}; \
             PREPARE claim_limited(text, int4, int4, int8, int8, text) AS {}; \
             PREPARE claim_limited_queues(text, int4, int4, int8, int8, text, text[]) AS {}; \
             PREPARE claim_from(text, int4, int4, int8, int4, timestamptz) AS {}; \
             PREPARE claim_queues_from(text, int4, int4, int8, text[], int4[], timestamptz[]) AS {}; \
             PREPARE lane(text, int4, int4, int8, text[]) AS {}; \
             PREPARE lane_from(text, int4, int4, int8, int4, timestamptz, text[]) AS {}; \
             PREPARE lane_leftovers(text, int4, int4, int8, text[]) AS {}; \
             PREPARE lane_leftovers_from(text, int4, int4, int8, int4, timestamptz, text[]) AS {}",
            dj::store::postgres::CLAIM,
            dj::store::postgres::CLAIM_QUEUES,
            dj::store::postgres::CLAIM_LIMITED,
            dj::store::postgres::CLAIM_LIMITED_QUEUES,
            dj::store::postgres::CLAIM_FROM,
            dj::store::postgres::CLAIM_QUEUES_FROM,
            dj::store::postgres::LANE_CLAIM,
            dj::store::postgres::LANE_CLAIM_FROM,
            dj::store::postgres::LANE_LEFTOVERS,
            dj::store::postgres::LANE_LEFTOVERS_FROM,
        ))
        .unwrap();
    let all_queues: Vec<String> = (0..20).map(|q| format!("q{q:02}")).collect();
    let all_queues = format!("{{{}}}", all_queues.join(","));
    // (statement, rows it must claim: every plain claim finds plenty ready).
    let claims = [
        (
            "claim('me', -2147483648, 2147483647, 1)".to_owned(),
            Some(1),
        ),
        (
            "claim('me', -2147483648, 2147483647, 1000)".to_owned(),
            Some(1000),
        ),
        ("claim('me', 2, 3, 500)".to_owned(), Some(500)),
        (
            "claim_from('me', -2147483648, 2147483647, 1000, 2, now() - interval '1 hour')"
                .to_owned(),
            Some(1000),
        ),
        (
            "lane('me', -2147483648, 2147483647, 1000, '{Transfer}')".to_owned(),
            Some(1000),
        ),
        (
            "lane_from('me', -2147483648, 2147483647, 1000, 2, now() - interval '1 hour', '{}')"
                .to_owned(),
            Some(1000),
        ),
        (
            "lane_leftovers('me', -2147483648, 2147483647, 1000, '{Transfer}')".to_owned(),
            None,
        ),
        (
            "lane_leftovers_from('me', -2147483648, 2147483647, 1000, 2, now() - interval '1 hour', '{}')"
                .to_owned(),
            None,
        ),
        (
            "claim_queues('me', -2147483648, 2147483647, 1000, '{q07}')".to_owned(),
            Some(1000),
        ),
        (
            "claim_queues('me', -2147483648, 2147483647, 1000, '{q01,q12}')".to_owned(),
            Some(1000),
        ),
        (
            "claim_queues_from('me', -2147483648, 2147483647, 1000, '{q01,q12}', \
             '{1,-2147483648}', ARRAY[now() - interval '1 hour', '0001-01-01'::timestamptz])"
                .to_owned(),
            Some(1000),
        ),
        (
            "claim_queues('me', 4, 4, 200, '{q02,q11,q19}')".to_owned(),
            Some(200),
        ),
        (
            format!("claim_queues('me', -2147483648, 2147483647, 1000, '{all_queues}')"),
            Some(1000),
        ),
        (
            "claim_limited('me', -2147483648, 2147483647, 100, 400, NULL)".to_owned(),
            None,
        ),
        (
            "claim_limited('me', -2147483648, 2147483647, 100, 400, 'k0500')".to_owned(),
            None,
        ),
        (
            "claim_limited_queues('me', -2147483648, 2147483647, 100, 400, NULL, '{q05,q09}')"
                .to_owned(),
            None,
        ),
    ];
    // (shape, its SQL, whether the side tables are analyzed once it ran).
    let shapes = [
        ("side tables empty, never analyzed", "", false),
        (
            "a paused queue and a limited queue, side tables never analyzed",
            "INSERT INTO dj_paused_queues (queue) VALUES ('q03'); \
             INSERT INTO dj_queue_limits (queue, max_running) VALUES ('q05', 1000000);",
            false,
        ),
        (
            "the same, side tables analyzed",
            "ANALYZE dj_paused_queues; ANALYZE dj_queue_limits;",
            true,
        ),
    ];
    for (shape, setup, analyzed) in shapes {
        client.batch_execute(setup).unwrap();
        if !analyzed {
            let never: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_class WHERE relname IN ('dj_paused_queues', \
                     'dj_queue_limits') AND reltuples < 0 \
                     AND relnamespace = current_schema()::regnamespace",
                    &[],
                )
                .unwrap()
                .get(0);
            assert_eq!(never, 2, "{shape}: the side tables must be unanalyzed here");
        }
        // A custom plan (the first executions of a prepared statement) and the generic plan
        // PostgreSQL may switch a prepared statement to after five.
        for mode in ["force_custom_plan", "force_generic_plan"] {
            for (execute, claims) in &claims {
                let mut tx = client.transaction().unwrap();
                tx.batch_execute(&format!("SET LOCAL plan_cache_mode = {mode}"))
                    .unwrap();
                let plan: Vec<String> = tx
                    .query(
                        &format!("EXPLAIN (ANALYZE, COSTS OFF) EXECUTE {execute}"),
                        &[],
                    )
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                tx.rollback().unwrap();
                let plan = plan.join("\n");
                let context = format!("{shape}, {mode}: {execute}\n{plan}");
                check_plan(&plan, &context);
                // The plain claims lock with SKIP LOCKED; the limited ones run one at a time
                // behind an advisory lock and re-check each row as they update it; the lane's
                // look for rows it never takes locks nothing.
                if !execute.starts_with("claim_limited") && !execute.starts_with("lane_leftovers") {
                    assert!(plan.contains("LockRows"), "{context}");
                }
                if let Some(claims) = claims {
                    assert_eq!(top_rows(&plan), *claims, "claimed rows; {context}");
                }
                // A worker of listed queues walks each queue's part of its own index.
                if execute.starts_with("claim_queues") {
                    assert!(
                        plan.contains("delayed_jobs_queue_ready")
                            && !plan.contains("using delayed_jobs_ready on"),
                        "{context}"
                    );
                }
            }
        }
    }
}

/// While a worker works through a backlog its claims start from the smallest key they last
/// took (the floor), so a job made ready ahead of that key, here a more urgent one enqueued
/// mid-backlog, is found only when the claim walks from the top again: within about a second
/// (`FLOOR_RESCAN`), long before the backlog ends.
fn floor_rescan_every_queue(backend: Backend) {
    floor_rescan(backend, &[]);
}

/// The same for a worker of listed queues, whose walks have a floor per queue.
fn floor_rescan_listed_queues(backend: Backend) {
    floor_rescan(backend, &["other", "bulk"]);
}

fn floor_rescan(backend: Backend, queues: &[&str]) {
    let t = TestDb::new(backend, "floor rescan");
    let log = t.log();
    let sleeps = |key: String, millis| Sleeps {
        log: log.path(),
        key,
        millis,
        max_run_time_secs: None,
    };
    // 3,000 jobs of 2 ms at priority 5: a serial worker needs more than 6 s for them.
    const BACKLOG: usize = 3_000;
    dj::enqueue_many(
        &t.db,
        (0..BACKLOG).map(|i| sleeps(format!("b{i}"), 2).delay().priority(5).queue("bulk")),
    )
    .unwrap();
    let config = dj::WorkerConfig::default()
        .concurrency(1)
        .read_ahead(20)
        .queues(queues.iter().copied());
    let worker = dj::Worker::with_config(t.db.clone(), config);
    let stop = worker.stop_flag();
    let working = std::thread::spawn(move || worker.run());
    let started = |key: &str| log.lines().iter().any(|l| l == &format!("start {key}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !started("b100") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        started("b100"),
        "the backlog did not start: {:?}",
        log.lines().len()
    );
    let enqueued = Instant::now();
    sleeps("urgent".into(), 0)
        .delay()
        .queue("bulk")
        .enqueue(&t.db)
        .unwrap();
    while !started("urgent") && Instant::now() < deadline + Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let waited = enqueued.elapsed();
    stop.set();
    working.join().unwrap().unwrap();
    let lines = log.lines();
    let urgent_at = lines.iter().position(|l| l == "start urgent");
    let before = lines[..urgent_at.unwrap_or(lines.len())]
        .iter()
        .filter(|l| l.starts_with("start b"))
        .count();
    assert!(
        urgent_at.is_some() && before < BACKLOG / 2,
        "the urgent job started after {before} backlog jobs ({waited:?}); a claim from the \
         floor must walk from the top at least once a second"
    );
    assert!(
        waited < Duration::from_secs(3),
        "the urgent job waited {waited:?}"
    );
}

/// No sequential scan of `delayed_jobs` (executed or not), and no node producing or filtering
/// out more than [`BOUND`] rows over all its loops (a node run once per candidate counts as
/// many times as it ran).
fn check_plan(plan: &str, context: &str) {
    assert!(!plan.contains("Seq Scan on delayed_jobs"), "{context}");
    assert!(plan.contains("Index Scan using delayed_jobs_"), "{context}");
    let mut loops = 1;
    for line in plan.lines() {
        let mut touched = Vec::new();
        if let (Some(&rows), Some(&n)) = (
            numbers_after(line, " rows=").last(),
            numbers_after(line, " loops=").last(),
        ) {
            loops = n;
            touched.push(rows * loops);
        }
        if let Some(&removed) = numbers_after(line, "Rows Removed by Filter: ").first() {
            touched.push(removed * loops);
        }
        for n in touched {
            assert!(n <= BOUND, "a node touched {n} rows: `{line}`; {context}");
        }
    }
}

/// The rows the statement's top node (the UPDATE) returned.
fn top_rows(plan: &str) -> i64 {
    let top = plan.lines().next().unwrap_or_default();
    numbers_after(top, " rows=")
        .last()
        .copied()
        .unwrap_or_default()
}

/// Every integer that follows `marker` in `line`.
fn numbers_after(line: &str, marker: &str) -> Vec<i64> {
    line.match_indices(marker)
        .filter_map(|(at, _)| {
            let digits: String = line[at + marker.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}
