//! Retention: rows kept failed (`--keep-failed`) are deleted once they failed longer ago than
//! `--keep-failed-for`, by the elected maintenance worker in batches, or by `prune` at once.

use std::process::{Command, Stdio};
use std::time::Duration;

use dj::{Job, JobFilter, Worker};
use dj_tests::jobs::Record;
use dj_tests::support::{Backend, TestDb};

use crate::operations::wait_until;
use crate::Case;

const WORKER: &str = env!("CARGO_BIN_EXE_dj-test-worker");

pub const CASES: &[Case] = &[
    (
        "prune_deletes_exactly_the_failed_rows_older_than_asked",
        prune_command,
    ),
    (
        "the_maintenance_worker_prunes_old_failed_rows_in_batches",
        maintenance_prunes,
    ),
];

fn record(i: usize) -> Record {
    Record {
        log: "/dev/null".into(),
        key: format!("{i}"),
    }
}

/// Marks rows as failed `ago` before the database's now (`20 days`, `1 hour`).
fn fail(t: &TestDb, ids: &[i64], ago: &str) {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let at = match t.backend {
        Backend::Postgres => format!("now() - interval '{ago}'"),
        Backend::Sqlite => format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '-{ago}')"),
    };
    t.exec(&format!(
        "UPDATE delayed_jobs SET failed_at = {at}, attempts = 25 WHERE id IN ({list})"
    ));
}

fn ids(t: &TestDb) -> Vec<i64> {
    let mut ids: Vec<i64> =
        t.db.jobs(&JobFilter::default())
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
    ids.sort();
    ids
}

fn prune_command(backend: Backend) {
    let t = TestDb::new(backend, "prune_command");
    let all: Vec<i64> = (0..5)
        .map(|i| record(i).delay().enqueue(&t.db).unwrap())
        .collect();
    fail(&t, &all[..2], "20 days");
    fail(&t, &all[2..3], "1 hour");
    let out = Command::new(WORKER)
        .args(["prune", "--older-than", "7d"])
        .env("DATABASE_URL", &t.url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Deleted 2 jobs that failed more than 7days ago"),
        "{stdout}"
    );
    assert_eq!(
        ids(&t),
        all[2..],
        "the recent failure and the waiting jobs stay"
    );
}

fn maintenance_prunes(backend: Backend) {
    let t = TestDb::new(backend, "maintenance_prunes");
    // More than two batches of old failures, and one recent.
    let old = dj::enqueue_many(&t.db, (0..2_500).map(record)).unwrap();
    fail(&t, &old, "30 days");
    let recent = record(9_999).delay().enqueue(&t.db).unwrap();
    fail(&t, &[recent], "1 hour");
    let worker = Worker::new(t.db.clone())
        .destroy_failed_jobs(false)
        .keep_failed_for(Duration::from_secs(7 * 24 * 3600))
        .sleep_delay(Duration::from_millis(200));
    let stop = worker.stop_flag();
    let running = std::thread::spawn(move || worker.run().unwrap());
    let pruned = wait_until(Duration::from_secs(20), || ids(&t) == [recent]);
    stop.set();
    running.join().unwrap();
    assert!(pruned, "{} rows left", ids(&t).len());
}
