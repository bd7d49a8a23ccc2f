//! What only SQLite has: files that several processes open at once, and files in a read-only
//! place.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dj::Job;
use dj_tests::jobs::Record;
use dj_tests::support::{Backend, TestDb};

use crate::processes::{wait_exit, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "processes_opening_a_new_file_at_once_all_succeed",
        concurrent_first_open,
    ),
    (
        "threads_opening_a_new_file_at_once_all_succeed",
        concurrent_first_open_threads,
    ),
    (
        "read_commands_work_on_a_read_only_file_and_a_worker_refuses_it",
        read_only_place,
    ),
];

const WORKER: &str = env!("CARGO_BIN_EXE_dj-test-worker");

/// Each round: six `migrate` processes on a file that does not exist yet. The first opener
/// switches the new file to WAL, which once made some of the others fail with "database is
/// locked". Each process waits behind `read` in a shell until all six are started, so that
/// they open the file together.
fn concurrent_first_open(backend: Backend) {
    let t = TestDb::unmigrated(backend, "firstopen");
    for round in 0..10 {
        let url = format!("sqlite:{}", t.dir.join(format!("new-{round}.db")).display());
        let mut children: Vec<(String, Child)> = (0..6)
            .map(|i| {
                let label = format!("r{round}-{i}");
                let out = std::fs::File::create(t.dir.join(format!("{label}.log"))).unwrap();
                let child = Command::new("sh")
                    .args(["-c", r#"read go; exec "$@""#, "sh", WORKER, "migrate"])
                    .env("DATABASE_URL", &url)
                    .stdin(Stdio::piped())
                    .stdout(out.try_clone().unwrap())
                    .stderr(out)
                    .spawn()
                    .expect("run sh");
                (label, child)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        for (_, child) in &mut children {
            child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        }
        for (label, child) in &mut children {
            let status = wait_exit(child, Duration::from_secs(60));
            assert!(
                status.success(),
                "round {round}, {label}: {status}\n{}",
                worker_output(&t, label)
            );
        }
    }
}

/// The same race between threads, which a barrier lines up more tightly than processes.
fn concurrent_first_open_threads(backend: Backend) {
    let t = TestDb::unmigrated(backend, "firstopenthreads");
    for round in 0..100 {
        let url = format!("sqlite:{}", t.dir.join(format!("new-{round}.db")).display());
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let db = dj::Db::open(&url).unwrap();
                        start.wait();
                        db.migrate().map(drop)
                    })
                })
                .collect();
            for (i, thread) in threads.into_iter().enumerate() {
                let result = thread.join().expect("no panic");
                assert!(result.is_ok(), "round {round}, thread {i}: {result:?}");
            }
        });
    }
}

/// Runs `dj-test-worker ARGS` on `url` with `dir` mounted read-only for it alone: a mount
/// namespace of its own, where `dir` is bind-mounted onto itself and remounted read-only.
/// (The tests run as root, which file permission bits do not stop.)
fn in_read_only_dir(t: &TestDb, dir: &Path, url: &str, label: &str, args: &[&str]) -> Child {
    let out = std::fs::File::create(t.dir.join(format!("{label}.log"))).expect("log file");
    let dir = dir.display().to_string();
    Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg(r#"mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@""#)
        .arg(&dir)
        .arg(WORKER)
        .args(args)
        .env("DATABASE_URL", url)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup log"))
        .stderr(out)
        .spawn()
        .expect("run unshare (util-linux)")
}

fn read_only_place(backend: Backend) {
    let t = TestDb::unmigrated(backend, "readonly");
    let dir = t.dir.join("ro");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jobs.db");
    let url = format!("sqlite:{}", file.display());
    let log = t.log();
    let id = {
        let db = dj::Db::open(&url).unwrap();
        db.migrate().unwrap();
        Record {
            log: log.path(),
            key: "ro".into(),
        }
        .delay()
        .enqueue(&db)
        .unwrap()
    };
    // The last connection closed: SQLite removed the `-wal` and `-shm` files, which a
    // read-only directory cannot get back.
    assert!(!dir.join("jobs.db-wal").exists() && !dir.join("jobs.db-shm").exists());

    // First make sure the place really is read-only for the commands.
    let mut probe = Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg(r#"mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && ! touch "$0/x""#)
        .arg(&dir)
        .stderr(Stdio::null())
        .spawn()
        .expect("run unshare (util-linux)");
    let status = wait_exit(&mut probe, Duration::from_secs(20));
    assert!(
        status.success(),
        "a read-only bind mount needs root: {status}"
    );

    let id_text = id.to_string();
    for (label, args, shows) in [
        ("jobs", vec!["jobs"], "Record"),
        ("show", vec!["show", id_text.as_str()], "Record"),
        ("stats", vec!["stats"], "READY"),
        ("schema", vec!["schema"], "CREATE TABLE"),
    ] {
        let mut child = in_read_only_dir(&t, &dir, &url, label, &args);
        let status = wait_exit(&mut child, Duration::from_secs(30));
        let out = worker_output(&t, label);
        assert!(status.success(), "{label}: {status}\n{out}");
        assert!(out.contains(shows), "{label}:\n{out}");
    }

    for command in ["workoff", "work"] {
        let mut child = in_read_only_dir(&t, &dir, &url, command, &[command]);
        let status = wait_exit(&mut child, Duration::from_secs(30));
        let out = worker_output(&t, command);
        assert!(!status.success(), "{command}: {status}\n{out}");
        assert!(
            out.contains(&format!("{url} is read-only for this process"))
                && out.contains("give this user write access"),
            "{command}:\n{out}"
        );
        assert!(!out.contains("Starting job worker"), "{command}:\n{out}");
    }

    // While a writer has the file open its `-wal` and `-shm` files exist, and the read
    // commands read through them.
    let writer = dj::Db::open(&url).unwrap();
    assert_eq!(writer.count(&dj::JobFilter::default()).unwrap(), 1);
    assert!(dir.join("jobs.db-shm").exists());
    let mut child = in_read_only_dir(&t, &dir, &url, "jobs-open", &["jobs"]);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let out = worker_output(&t, "jobs-open");
    assert!(
        status.success() && out.contains("Record"),
        "{status}\n{out}"
    );
    assert_eq!(log.lines().len(), 0, "nothing was performed");
}
