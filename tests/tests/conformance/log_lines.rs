//! Log lines and outputs that tell the truth: what a second signal leaves locked and when it
//! is freed, what is known about a job freed after it (its start was not recorded), where the
//! database URL came from, the SQLite default when `DATABASE_URL` is unset, `migrate` without
//! the server's NOTICEs, and one running count for a worker and its queue in `stats`.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use dj_tests::support::{Backend, TestDb};

use crate::operations::{dj, stderr, stdout, wait_until};
use crate::processes::{signal, sleeps, spawn_worker, wait_exit, worker_output, WORKER};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "a_second_signal_names_the_jobs_left_locked_and_when_they_are_freed",
        second_signal,
    ),
    (
        "the_database_line_says_whether_the_url_came_from_the_flag_or_the_environment",
        url_source,
    ),
    ("migrate_prints_no_server_notices", migrate_quiet),
    (
        "stats_counts_a_workers_running_job_as_its_queue_does",
        stats_agree,
    ),
];

/// The default database is a SQLite file whatever the backend under test: one run suffices.
pub const SQLITE_CASES: &[Case] = &[(
    "without_database_url_a_command_names_the_sqlite_default_and_creates_nothing",
    unset_database_url,
)];

/// The first INT starts the graceful stop; the second exits at once, naming the running job
/// it leaves locked and when another worker frees it. The worker started next frees it; its
/// start had not been recorded (the first heartbeat comes 5 s after start), and the line
/// says exactly that rather than "had not started".
fn second_signal(backend: Backend) {
    let t = TestDb::new(backend, "second_signal");
    let log = t.log();
    let id = sleeps(&t, &log, "k", 20_000);
    let args = [
        "work",
        "--sleep-delay",
        "0.2",
        "--shutdown-timeout",
        "30",
        "--heartbeat-timeout",
        "60s",
    ];
    let mut w = spawn_worker(&t, "w", &args);
    assert!(log.wait_for("start k", Duration::from_secs(15)));
    signal(&w, libc::SIGINT);
    assert!(wait_until(Duration::from_secs(5), || worker_output(
        &t, "w"
    )
    .contains("Exiting...")));
    signal(&w, libc::SIGINT);
    let status = wait_exit(&mut w, Duration::from_secs(5));
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "{status}");
    let out = worker_output(&t, "w");
    let line = out
        .lines()
        .find(|l| l.contains("Second signal"))
        .unwrap_or_else(|| panic!("no line about the second signal:\n{out}"));
    assert!(
        line.contains(&format!("exiting now, leaving 1 job(s) locked: [{id}]")),
        "{line}"
    );
    assert!(
        line.contains("at its next maintenance pass (every 5s)")
            && line.contains("once this worker's heartbeat is 1m old"),
        "{line}"
    );
    assert!(t.db.job(id).unwrap().unwrap().locked_by.is_some());

    let mut next = spawn_worker(&t, "next", &args);
    let released = wait_until(Duration::from_secs(40), || {
        worker_output(&t, "next").contains("Released 1 job(s)")
    });
    signal(&next, libc::SIGKILL);
    wait_exit(&mut next, Duration::from_secs(10));
    let out = worker_output(&t, "next");
    assert!(released, "the next worker freed the job:\n{out}");
    let line = out
        .lines()
        .find(|l| l.contains("Released 1 job(s)"))
        .expect("the line");
    assert!(
        line.contains("start not recorded") && line.ends_with(&format!("[{id}]")),
        "{line}"
    );
    assert!(!line.contains("had not started"), "{line}");
}

/// `Database: URL (from DATABASE_URL)` when only the variable is set, `(from
/// --database-url)` when the flag is given.
fn url_source(backend: Backend) {
    let t = TestDb::new(backend, "url_source");
    let out = dj(&t, &["workoff"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let database = |out: &Output| {
        stdout(out)
            .lines()
            .find(|l| l.contains("Database: "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no Database line:\n{}", stdout(out)))
    };
    assert!(
        database(&out).ends_with("(from DATABASE_URL)"),
        "{}",
        database(&out)
    );
    let out = Command::new(WORKER)
        .args(["workoff", "--database-url", &t.url])
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        database(&out).ends_with("(from --database-url)"),
        "{}",
        database(&out)
    );
}

/// With no `DATABASE_URL`, `jobs` in a directory without `dj.sqlite3` says that the variable
/// is unset and that the SQLite file is the default, and creates no file; a file without the
/// table gets the same explanation; after `migrate`, the default works.
fn unset_database_url(backend: Backend) {
    let t = TestDb::unmigrated(backend, "unset_database_url");
    let run = |args: &[&str]| {
        Command::new(WORKER)
            .args(args)
            .current_dir(&t.dir)
            .env_remove("DATABASE_URL")
            .env_remove("DJ_REQUIRE_DATABASE_URL")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let default = t.dir.join("dj.sqlite3");
    let out = run(&["jobs"]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains("DATABASE_URL is not set, so dj used its default, sqlite:dj.sqlite3")
            && text.contains("a SQLite file in")
            && text.contains("which does not exist"),
        "{text}"
    );
    assert!(!default.exists(), "no file was created");

    std::fs::File::create(&default).unwrap();
    let out = run(&["stats"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("DATABASE_URL is not set")
            && stderr(&out).contains("which has no delayed_jobs table"),
        "{}",
        stderr(&out)
    );

    let out = run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["jobs"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `migrate` on a fresh database, and again: the server's NOTICEs (`... already exists,
/// skipping`) are not printed.
fn migrate_quiet(backend: Backend) {
    let t = TestDb::unmigrated(backend, "migrate_quiet");
    for expected in [
        "applied migrations [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]",
        "up to date",
    ] {
        let out = dj(&t, &["migrate"]);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(out.status.success(), "{text}");
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains("NOTICE"), "{text}");
    }
}

/// While one job runs, `stats --json` counts it for its queue and for its worker alike (the
/// worker's count once came from its heartbeat, up to 5 s late).
fn stats_agree(backend: Backend) {
    let t = TestDb::new(backend, "stats_agree");
    let log = t.log();
    sleeps(&t, &log, "k", 20_000);
    let mut w = spawn_worker(
        &t,
        "w",
        &["work", "--sleep-delay", "0.2", "--shutdown-timeout", "1"],
    );
    assert!(log.wait_for("start k", Duration::from_secs(15)));
    let out = dj(&t, &["stats", "--json"]);
    signal(&w, libc::SIGKILL);
    wait_exit(&mut w, Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["queues"][0]["running"], 1, "{json}");
    assert_eq!(json["workers"][0]["running"], 1, "{json}");
}
