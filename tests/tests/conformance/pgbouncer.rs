//! dj through a real PgBouncer (PostgreSQL only): in transaction pooling with
//! `pooler=transaction` (no named prepared statements, no LISTEN on the pooled URL), and in
//! session pooling with the URL as it is. Each PgBouncer gets few server connections, so that
//! its clients share them: a statement prepared by one client meets the next one.

use std::collections::HashSet;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dj::{Db, EnqueueOutcome, Job, JobFilter};
use dj_tests::jobs::{GivesUp, Record};
use dj_tests::pgbouncer::{PgBouncer, PoolMode};
use dj_tests::support::{Backend, PerformLog, TestDb};

use crate::operations::wait_until;
use crate::processes::{signal, spawn_bin_at, wait_exit, worker_output, WORKER};
use crate::Case;

pub const POSTGRES_CASES: &[Case] = &[
    (
        "pgbouncer_transaction_pool_takes_single_and_bulk_enqueues_from_threads",
        transaction_enqueues,
    ),
    (
        "pgbouncer_transaction_pool_runs_every_command",
        transaction_commands,
    ),
    (
        "pgbouncer_transaction_pool_workers_poll_and_log_no_error",
        transaction_workers_poll,
    ),
    (
        "pgbouncer_transaction_pool_workers_wake_through_listen_url",
        transaction_workers_listen,
    ),
    (
        "pgbouncer_session_pool_works_with_the_plain_url",
        session_pool,
    ),
];

/// Server connections of the transaction pool: fewer than one `Db`'s connections.
const SHARED: u32 = 4;

fn transaction_enqueues(backend: Backend) {
    let t = TestDb::new(backend, "pgb_tx_enqueue");
    let bouncer = PgBouncer::start(&t, PoolMode::Transaction, SHARED);
    let url = bouncer.url("pooler=transaction");
    let log = t.log();
    let keys = enqueue_from_threads(&url, &log);
    let db = Db::open(&url).unwrap();
    // More rows than one statement takes: several statements in one transaction.
    let many = dj::INSERT_BATCH + 10;
    let ids = dj::enqueue_many(&db, (0..many).map(|i| record(&log, &format!("big-{i}")))).unwrap();
    assert_eq!(ids.len(), many);
    // The unique insert, and the async one.
    let unique = || {
        record(&log, "unique")
            .delay()
            .run_in(Duration::from_secs(3600))
            .unique("pgbouncer")
            .enqueue_outcome(&db)
            .unwrap()
    };
    assert!(matches!(unique(), EnqueueOutcome::Inserted(_)));
    assert!(matches!(unique(), EnqueueOutcome::Duplicate(_)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let async_ids = runtime
        .block_on(dj::enqueue_many_async(
            &db,
            (0..3).map(|i| record(&log, &format!("async-{i}"))),
        ))
        .unwrap();
    assert_eq!(async_ids.len(), 3);
    let all = t.db.count_jobs(&JobFilter::default()).unwrap();
    assert_eq!(
        all as usize,
        keys.len() + many + 1 + 3,
        "every row stored once"
    );
    assert!(
        !bouncer.log().contains("prepared statement"),
        "{}",
        bouncer.log()
    );
}

fn transaction_commands(backend: Backend) {
    let t = TestDb::unmigrated(backend, "pgb_tx_commands");
    let bouncer = PgBouncer::start(&t, PoolMode::Transaction, SHARED);
    let url = bouncer.url("pooler=transaction");
    let run = |args: &[&str]| command(&t, &url, args);
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(out.status.success(), "{args:?} failed:\n{}", out.stderr);
        out.stdout
    };
    assert!(ok(&["migrate"]).contains("applied migrations"));
    assert!(ok(&["migrate"]).contains("up to date"));
    assert!(ok(&["schema"]).contains("delayed_jobs"));

    let db = Db::open(&url).unwrap();
    let log = t.log();
    let done = record(&log, "a").delay().queue("a").enqueue(&db).unwrap();
    let later = record(&log, "later")
        .delay()
        .queue("a")
        .run_in(Duration::from_secs(3600))
        .enqueue(&db)
        .unwrap();
    let fails = GivesUp { log: log.path() }
        .delay()
        .queue("b")
        .enqueue(&db)
        .unwrap();

    let stats: serde_json::Value = serde_json::from_str(&ok(&["stats", "--json"])).unwrap();
    assert_eq!(stats["queues"].as_array().map(Vec::len), Some(2), "{stats}");
    assert!(ok(&["stats"]).contains("READY"));
    assert!(ok(&["jobs"]).contains("Record"));
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&["jobs", "--queue", "a", "--json"])).unwrap();
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(2), "{listed}");
    assert!(ok(&["show", &later.to_string()]).contains("later"));
    ok(&["show", &later.to_string(), "--json"]);
    ok(&["pause", "a"]);
    ok(&["resume", "a"]);
    ok(&["limit", "a", "2"]);
    assert!(ok(&["limit"]).contains('a'));
    ok(&["limit", "a", "none"]);

    let out = run(&["workoff", "--keep-failed"]);
    assert!(!out.status.success(), "a job failed:\n{}", out.stderr);
    assert_clean("workoff", &out.stderr);
    assert_eq!(log.count("perform a"), 1);
    assert!(t.db.job(done).unwrap().is_none(), "performed and deleted");

    assert!(ok(&["retry", "--failed", "--yes"]).contains("retried 1"));
    assert!(ok(&["retry", &later.to_string()]).contains("retried 1"));
    assert!(ok(&["cancel", &fails.to_string()]).contains("ancel"));
    ok(&["unlock", "--stale"]);
    ok(&["prune", "--older-than", "0s"]);
    ok(&["cron"]);
    ok(&["cron", "--json"]);
    assert!(ok(&["top", "--once"]).contains("THROUGHPUT"));
    assert!(ok(&["delete", &later.to_string()]).contains("deleted 1"));
    ok(&["clear", "--yes"]);
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
}

fn transaction_workers_poll(backend: Backend) {
    let t = TestDb::new(backend, "pgb_tx_poll");
    let bouncer = PgBouncer::start(&t, PoolMode::Transaction, SHARED);
    let url = bouncer.url("pooler=transaction");
    let lines = two_workers_work_off(&t, &url, "0.5");
    for line in lines {
        assert!(
            line.contains("Wake-ups: polling every 500ms (pooler=transaction"),
            "{line}"
        );
    }
}

fn transaction_workers_listen(backend: Backend) {
    let t = TestDb::new(backend, "pgb_tx_listen");
    let bouncer = PgBouncer::start(&t, PoolMode::Transaction, SHARED);
    let url = bouncer.url(&format!(
        "pooler=transaction&listen_url={}",
        percent_encode(&t.url)
    ));
    // Polling every 60 s: only a NOTIFY through the direct connection wakes them in time.
    let lines = two_workers_work_off(&t, &url, "60");
    for line in lines {
        assert!(
            line.contains("Wake-ups: LISTEN on postgres://postgres@"),
            "{line}"
        );
    }
}

fn session_pool(backend: Backend) {
    let t = TestDb::unmigrated(backend, "pgb_session");
    // Enough server connections for every client at once (a session pool holds one per
    // client connection); clients that come later reuse them after PgBouncer's DISCARD ALL.
    let bouncer = PgBouncer::start(&t, PoolMode::Session, 40);
    let url = bouncer.url("");
    for args in [
        &["migrate"][..],
        &["stats", "--json"],
        &["jobs"],
        &["stats"],
    ] {
        let out = command(&t, &url, args);
        assert!(out.status.success(), "{args:?}:\n{}", out.stderr);
    }
    let log = t.log();
    let keys = enqueue_from_threads(&url, &log);
    assert_eq!(
        t.db.count_jobs(&JobFilter::default()).unwrap() as usize,
        keys.len()
    );
    t.exec("DELETE FROM delayed_jobs");
    // Workers LISTEN through the session pool (60 s polls: NOTIFY must wake them).
    let lines = two_workers_work_off(&t, &bouncer.url("pooler=session"), "60");
    assert!(lines.iter().all(|l| l.is_empty()), "{lines:?}");
}

/// Six threads on two `Db`s (two apps' pools), each enqueuing ten jobs one by one and two
/// batches of 25; returns the keys.
fn enqueue_from_threads(url: &str, log: &PerformLog) -> Vec<String> {
    let dbs = [Db::open(url).unwrap(), Db::open(url).unwrap()];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let db = &dbs[i % 2];
                s.spawn(move || {
                    let mut keys = Vec::new();
                    for k in 0..10 {
                        let key = format!("single-{i}-{k}");
                        record(log, &key).delay().enqueue(db).unwrap();
                        keys.push(key);
                    }
                    for b in 0..2 {
                        let batch: Vec<String> =
                            (0..25).map(|k| format!("bulk-{i}-{b}-{k}")).collect();
                        let ids =
                            dj::enqueue_many(db, batch.iter().map(|k| record(log, k))).unwrap();
                        assert_eq!(ids.len(), batch.len());
                        keys.extend(batch);
                    }
                    keys
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// Two `work` processes on `url` (sleep delay `sleep`) wait idle, then work off 330 jobs
/// enqueued through `url` (in batches and one by one) within 40 s; each performed once, no
/// error or warning in the logs. Returns each worker's wake-up line ("" if none).
fn two_workers_work_off(t: &TestDb, url: &str, sleep: &str) -> Vec<String> {
    let log = t.log();
    let labels = ["w1", "w2"];
    let mut workers: Vec<_> = labels
        .iter()
        .map(|label| spawn_bin_at(WORKER, t, label, url, &["work", "--sleep-delay", sleep]))
        .collect();
    let started = |label: &str| worker_output(t, label).contains("Starting job worker");
    assert!(
        wait_until(Duration::from_secs(20), || labels
            .iter()
            .all(|l| started(l))),
        "workers did not start:\n{}\n{}",
        worker_output(t, "w1"),
        worker_output(t, "w2")
    );
    // Idle: waiting on LISTEN, or polling.
    std::thread::sleep(Duration::from_secs(1));
    let db = Db::open(url).unwrap();
    let mut keys: Vec<String> = Vec::new();
    for b in 0..3 {
        let batch: Vec<String> = (0..100).map(|k| format!("w-{b}-{k}")).collect();
        dj::enqueue_many(&db, batch.iter().map(|k| record(&log, k))).unwrap();
        keys.extend(batch);
    }
    for k in 0..30 {
        let key = format!("w-single-{k}");
        record(&log, &key).delay().enqueue(&db).unwrap();
        keys.push(key);
    }
    let all_done = wait_until(Duration::from_secs(40), || {
        log.count_prefix("perform ") >= keys.len()
    });
    for worker in &workers {
        signal(worker, libc::SIGTERM);
    }
    let statuses: Vec<ExitStatus> = workers
        .iter_mut()
        .map(|w| wait_exit(w, Duration::from_secs(30)))
        .collect();
    let outputs: Vec<String> = labels.iter().map(|l| worker_output(t, l)).collect();
    assert!(
        all_done,
        "{} of {} jobs performed\n{}\n{}",
        log.count_prefix("perform "),
        keys.len(),
        outputs[0],
        outputs[1]
    );
    let performed = log.lines();
    let unique: HashSet<&String> = performed.iter().collect();
    assert_eq!(unique.len(), performed.len(), "a job performed twice");
    assert_eq!(performed.len(), keys.len());
    for ((label, status), output) in labels.iter().zip(&statuses).zip(&outputs) {
        assert!(status.success(), "{label}: {status:?}\n{output}");
        assert_clean(label, output);
    }
    outputs
        .iter()
        .map(|o| {
            o.lines()
                .find(|l| l.contains("Wake-ups:"))
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn record(log: &PerformLog, key: &str) -> Record {
    Record {
        log: log.path(),
        key: key.to_owned(),
    }
}

/// A command's outcome.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `dj-test-worker ARGS` on `url` (stdin not a terminal), failing the test if it takes
/// over 15 s or its error output mentions a prepared statement.
fn command(t: &TestDb, url: &str, args: &[&str]) -> Output {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let n = RUN.fetch_add(1, Ordering::SeqCst);
    let (out, err) = (
        t.dir.join(format!("cmd-{n}.out")),
        t.dir.join(format!("cmd-{n}.err")),
    );
    let mut child = Command::new(WORKER)
        .args(args)
        .env("DATABASE_URL", url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run the worker binary");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{args:?} did not answer within 15 s:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    };
    assert!(
        !output.stderr.contains("prepared statement"),
        "{args:?}:\n{}",
        output.stderr
    );
    output
}

/// Fails on any ERROR or WARN log line, or any mention of a prepared statement.
fn assert_clean(label: &str, output: &str) {
    let bad: Vec<&str> = output
        .lines()
        .filter(|line| {
            matches!(line.split_whitespace().nth(1), Some("ERROR" | "WARN"))
                || line.contains("prepared statement")
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{label} logged {} error line(s):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// `url` as a URL query value: every byte but letters, digits and `-._~` escaped.
fn percent_encode(url: &str) -> String {
    url.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
