//! What only SQLite has: files that several processes open at once.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
