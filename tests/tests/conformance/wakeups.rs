//! Wake-ups: a job made ready by `retry`, by run-now (the dashboard's button) or by an unlock
//! wakes an idle worker as an enqueue does, rather than waiting out its `--sleep-delay` (NOTIFY
//! on PostgreSQL; on SQLite, the insert sequence and the `dj_wakeups` counter).

use std::time::Duration;

use dj::{Job, JobFilter};
use dj_tests::jobs::{GivesUp, Record};
use dj_tests::support::{Backend, TestDb};

use crate::operations::{dj, stderr, wait_until};
use crate::processes::{signal, spawn_worker, wait_exit, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[(
    "an_enqueue_retry_run_now_and_unlock_wake_an_idle_worker",
    retry_wakes,
)];

/// A worker polling once a minute runs, within seconds each: a failed job retried with
/// `retry ID`, a scheduled one made ready with `Db::run_now`, a dead worker's job released
/// with `unlock --worker`, and a new job.
fn retry_wakes(backend: Backend) {
    let t = TestDb::new(backend, "retry_wakes");
    let log = t.log();
    let failed = GivesUp { log: log.path() }.delay().enqueue(&t.db).unwrap();
    let record = |key: &str| {
        Record {
            log: log.path(),
            key: key.into(),
        }
        .delay()
        .run_in(Duration::from_secs(3600))
        .enqueue(&t.db)
        .unwrap()
    };
    let later = record("later");
    let stale = record("stale");
    let mut w = spawn_worker(
        &t,
        "w",
        &["work", "--sleep-delay", "60", "--shutdown-timeout", "1"],
    );
    let kept = wait_until(Duration::from_secs(15), || {
        t.db.job(failed)
            .unwrap()
            .is_some_and(|r| r.failed_at.is_some())
    });
    assert!(kept, "{}", worker_output(&t, "w"));
    // The worker is idle now, for a minute.
    std::thread::sleep(Duration::from_millis(500));

    let out = dj(&t, &["retry", &failed.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let retried = wait_until(Duration::from_secs(5), || log.count("perform") == 2);

    t.db.run_jobs_now(&JobFilter {
        id: Some(later),
        ..JobFilter::default()
    })
    .unwrap();
    let ran_now = log.wait_for("perform later", Duration::from_secs(5));

    // A lock of a worker that is gone: `unlock --worker` releases it.
    let gone = "dj.1 host:elsewhere pid:1";
    t.exec(&format!(
        "UPDATE delayed_jobs SET run_at = created_at, locked_at = created_at, \
         locked_by = '{gone}' WHERE id = {stale}"
    ));
    std::thread::sleep(Duration::from_millis(300));
    let out = dj(&t, &["unlock", "--worker", gone]);
    assert!(out.status.success(), "{}", stderr(&out));
    let unlocked = log.wait_for("perform stale", Duration::from_secs(5));

    std::thread::sleep(Duration::from_millis(300));
    Record {
        log: log.path(),
        key: "new".into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let enqueued = log.wait_for("perform new", Duration::from_secs(5));

    signal(&w, libc::SIGTERM);
    wait_exit(&mut w, Duration::from_secs(30));
    let out = worker_output(&t, "w");
    assert!(retried, "the retried job ran within 5 s:\n{out}");
    assert!(ran_now, "the job run now ran within 5 s:\n{out}");
    assert!(unlocked, "the unlocked job ran within 5 s:\n{out}");
    assert!(enqueued, "the new job ran within 5 s:\n{out}");
}
