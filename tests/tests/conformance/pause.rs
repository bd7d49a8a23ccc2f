//! Paused queues: a paused queue's jobs stay untouched while other queues drain, across
//! workers, and run within one poll of `resume`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dj::{Job, JobFilter};
use dj_tests::jobs::Record;
use dj_tests::support::{Backend, PerformLog, TestDb};

use crate::operations::wait_until;
use crate::processes::{signal, spawn_worker, wait_exit, worker_output};
use crate::Case;

const WORKER: &str = env!("CARGO_BIN_EXE_dj-test-worker");

pub const CASES: &[Case] = &[(
    "paused_queue_waits_untouched_while_others_drain_then_runs_after_resume",
    paused_queue,
)];

pub fn cli(t: &TestDb, args: &[&str]) -> String {
    let out = Command::new(WORKER)
        .args(args)
        .env("DATABASE_URL", &t.url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn enqueue(t: &TestDb, log: &PerformLog, key: &str, queue: &str) -> i64 {
    Record {
        log: log.path(),
        key: key.into(),
    }
    .delay()
    .queue(queue)
    .enqueue(&t.db)
    .unwrap()
}

fn paused_queue(backend: Backend) {
    let t = TestDb::new(backend, "paused_queue");
    let log = t.log();
    assert!(cli(&t, &["pause", "reports"]).contains("Queue reports paused"));
    let held = enqueue(&t, &log, "report", "reports");
    let paused_at = Instant::now();
    let mut worker = spawn_worker(&t, "w", &["work", "--sleep-delay", "0.2"]);
    for i in 0..20 {
        enqueue(&t, &log, &format!("mail{i}"), "mail");
    }
    assert!(
        wait_until(Duration::from_secs(20), || log.count_prefix("perform mail")
            == 20),
        "the other queue drains: {}",
        worker_output(&t, "w")
    );
    let stats: serde_json::Value = serde_json::from_str(&cli(&t, &["stats", "--json"])).unwrap();
    assert_eq!(stats["paused"], serde_json::json!(["reports"]), "{stats}");
    // Ten seconds paused: the job is never claimed, nor run.
    while paused_at.elapsed() < Duration::from_secs(10) {
        let row = t.db.job(held).unwrap().expect("still there");
        assert!(
            row.locked_by.is_none() && row.attempts == 0,
            "touched: {row:?}"
        );
        assert_eq!(log.count("perform report"), 0);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cli(&t, &["resume", "reports"]).contains("Queue reports resumed"));
    let resumed = Instant::now();
    assert!(
        wait_until(Duration::from_secs(3), || log.count("perform report") == 1),
        "it runs after resume: {}",
        worker_output(&t, "w")
    );
    println!(
        "{}: resume -> job performed in {:.2?}",
        backend.name(),
        resumed.elapsed()
    );
    assert!(t.db.paused_queues().unwrap().is_empty());
    // Its outcome is written just after it runs (the completer's batch): wait for that.
    assert!(
        wait_until(Duration::from_secs(5), || t
            .db
            .count_jobs(&JobFilter::default())
            .unwrap()
            == 0),
        "its completion is written: {}",
        worker_output(&t, "w")
    );
    signal(&worker, libc::SIGTERM);
    assert!(wait_exit(&mut worker, Duration::from_secs(30)).success());
}
