//! Retention: a job that failed for good is kept (unless `--delete-failed`, or its own
//! `destroy_failed_jobs`), where `show`, `jobs --state failed` and `retry` find it, until it
//! failed longer ago than `--keep-failed-for`: then the elected maintenance worker deletes
//! it, in batches, or `prune` at once.

use std::process::{Command, Stdio};
use std::time::Duration;

use dj::{Job, JobFilter, JobState, Worker};
use dj_tests::jobs::{FailsFast, GivesUp, Record};
use dj_tests::support::{Backend, TestDb};

use crate::operations::{dj, stderr, stdout, wait_until};
use crate::Case;

const WORKER: &str = env!("CARGO_BIN_EXE_dj-test-worker");

pub const CASES: &[Case] = &[
    (
        "a_failed_job_is_kept_by_default_where_show_and_jobs_find_it",
        kept_by_default,
    ),
    (
        "delete_failed_deletes_failed_jobs_unless_the_job_says_otherwise",
        delete_failed,
    ),
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
        // MySQL's units are singular: `INTERVAL 20 DAY`.
        Backend::Mysql => format!("UTC_TIMESTAMP(6) - INTERVAL {}", ago.trim_end_matches('s')),
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

/// After `FAILED permanently`, the row is kept: its log line says so, how to retry it and when
/// it goes; `show ID` and `jobs --state failed` find it; `--keep-failed`, the old way to ask
/// for this, still works.
fn kept_by_default(backend: Backend) {
    let t = TestDb::new(backend, "kept_by_default");
    let log = t.log();
    let id = GivesUp { log: log.path() }.delay().enqueue(&t.db).unwrap();
    let out = dj(&t, &["workoff"]);
    assert!(!out.status.success(), "a job failed: exit 1");
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains("FAILED permanently"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no FAILED permanently line:\n{}", stdout(&out)));
    assert!(
        line.ends_with(&format!(
            "kept as failed (retry with `worker retry {id}`; pruned after 14days)"
        )),
        "{line}"
    );
    let row = t.db.job(id).unwrap().expect("the failed row is kept");
    assert!(row.failed_at.is_some(), "{row:?}");

    let out = dj(&t, &["show", &id.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the account is gone"),
        "{}",
        stdout(&out)
    );
    let out = dj(&t, &["jobs", "--state", "failed", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<i64> = json["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [id], "{json}");

    let again = GivesUp { log: log.path() }.delay().enqueue(&t.db).unwrap();
    let out = dj(&t, &["workoff", "--keep-failed"]);
    assert!(
        stdout(&out).contains("FAILED permanently"),
        "{}",
        stdout(&out)
    );
    assert!(t.db.job(again).unwrap().unwrap().failed_at.is_some());
}

/// `--delete-failed` (delayed_job's old default) deletes the row and says so; a job's own
/// `destroy_failed_jobs` still wins.
fn delete_failed(backend: Backend) {
    let t = TestDb::new(backend, "delete_failed");
    let log = t.log();
    let gone = GivesUp { log: log.path() }.delay().enqueue(&t.db).unwrap();
    let keeps = FailsFast {
        log: log.path(),
        keep: true,
        failure_panics: false,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    // FailsFast is due again at once after each of its 3 attempts; a work-off may end
    // between two of them.
    let mut text = String::new();
    for _ in 0..5 {
        text += &stdout(&dj(&t, &["workoff", "--delete-failed"]));
        if t.db
            .job(keeps)
            .unwrap()
            .is_some_and(|r| r.failed_at.is_some())
        {
            break;
        }
    }
    let line = |id: i64| {
        text.lines()
            .find(|l| l.contains(&format!("(id={id})")) && l.contains("FAILED permanently"))
            .unwrap_or_else(|| panic!("no FAILED permanently line for {id}:\n{text}"))
    };
    assert!(line(gone).ends_with("; deleted"), "{}", line(gone));
    assert!(line(keeps).contains("kept as failed"), "{}", line(keeps));
    assert!(t.db.job(gone).unwrap().is_none(), "deleted");
    let failed = JobFilter {
        state: Some(JobState::Failed),
        ..JobFilter::default()
    };
    let kept: Vec<i64> = t.db.jobs(&failed).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(kept, [keeps], "the job's own setting wins");

    // Asking for both is a mistake, not a coin toss.
    let out = dj(&t, &["workoff", "--delete-failed", "--keep-failed"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}
