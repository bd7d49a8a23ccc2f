//! What only PostgreSQL has: the claim's plan at a million rows, LISTEN/NOTIFY wake-ups.

use std::time::{Duration, Instant};

use dj::Job;
use dj_tests::jobs::Record;
use dj_tests::support::{Backend, TestDb};

use crate::processes::{signal, spawn_worker, wait_exit, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    ("claim_is_an_index_scan_with_a_million_rows", claim_plan),
    ("idle_worker_wakes_on_notify_not_on_its_poll", notify_wakes),
];

fn claim_plan(backend: Backend) {
    let t = TestDb::new(backend, "plan");
    // A million rows: most ready, some scheduled, some failed, some locked.
    t.exec(
        "INSERT INTO delayed_jobs (name, handler, priority, run_at, failed_at, locked_at, locked_by) \
         SELECT 'Record', '{\"job\":\"Record\",\"args\":{}}', i % 10, \
                now() + ((i % 7) - 3) * interval '1 minute', \
                CASE WHEN i % 50 = 0 THEN now() END, \
                CASE WHEN i % 97 = 0 THEN now() END, \
                CASE WHEN i % 97 = 0 THEN 'host:x pid:1' END \
         FROM generate_series(1, 1000000) AS i; \
         ANALYZE delayed_jobs;",
    );
    let mut client = t.pg_client();
    client
        .batch_execute(&format!(
            "PREPARE claim(text, int4, int4, int8) AS {}; \
             PREPARE claim_queues(text, int4, int4, int8, text[]) AS {}",
            dj::store::postgres::CLAIM,
            dj::store::postgres::CLAIM_QUEUES
        ))
        .unwrap();
    for execute in [
        "claim('me', -2147483648, 2147483647, 1)",
        "claim('me', -2147483648, 2147483647, 100)",
        "claim('me', 0, 5, 100)",
        "claim_queues('me', -2147483648, 2147483647, 100, '{feeds}')",
        "claim_queues('me', -2147483648, 2147483647, 100, '{feeds,mail}')",
    ] {
        let plan: Vec<String> = client
            .query(&format!("EXPLAIN EXECUTE {execute}"), &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        println!("{plan}");
        assert!(plan.contains("Index Scan using delayed_jobs_"), "{plan}");
        assert!(!plan.contains("Seq Scan"), "{plan}");
        assert!(plan.contains("LockRows"), "{plan}");
    }
}

fn notify_wakes(backend: Backend) {
    let t = TestDb::new(backend, "notify");
    let log = t.log();
    // Polling every 60 s: only a NOTIFY can wake it within the test.
    let mut w = spawn_worker(&t, "w", &["work", "--sleep-delay", "60"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !worker_output(&t, "w").contains("Starting job worker") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    Record {
        log: log.path(),
        key: "wake".into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let woke = log.wait_for("perform wake", Duration::from_secs(15));
    signal(&w, libc::SIGTERM);
    let status = wait_exit(&mut w, Duration::from_secs(20));
    assert!(
        woke,
        "the idle worker did not wake on NOTIFY\n{}",
        worker_output(&t, "w")
    );
    assert!(status.success());
}
