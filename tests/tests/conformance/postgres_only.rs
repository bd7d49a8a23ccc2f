//! What only PostgreSQL has: LISTEN/NOTIFY wake-ups, outages (the claim's plan is in
//! `claim_plan.rs`).

use std::time::{Duration, Instant};

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dj::Job;
use dj_tests::jobs::Record;
use dj_tests::support::{Backend, TestDb};

use crate::processes::{signal, spawn_worker, wait_exit, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    ("idle_worker_wakes_on_notify_not_on_its_poll", notify_wakes),
    ("worker_survives_a_database_outage_and_loses_no_job", outage),
    (
        "workoff_and_read_commands_give_up_on_an_unreachable_database",
        bounded_wait,
    ),
];

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

/// A TCP forwarder to the test PostgreSQL that can cut every connection and refuse new ones,
/// as a database restart would.
struct Proxy {
    addr: String,
    down: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let down = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (d, c) = (down.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    continue; // refused: dropped at once
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut tracked = c.lock().unwrap();
                tracked.push(client.try_clone().unwrap());
                tracked.push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy { addr, down, conns }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

fn outage(backend: Backend) {
    let t = TestDb::new(backend, "outage");
    let log = t.log();
    // The worker reaches the database only through the proxy.
    let config: postgres::Config = t.url.parse().unwrap();
    let (host, port) = match (&config.get_hosts()[0], config.get_ports()[0]) {
        (postgres::config::Host::Tcp(h), p) => (h.clone(), p),
        #[allow(unreachable_patterns)]
        _ => panic!("the outage test needs a TCP PostgreSQL url"),
    };
    let proxy = Proxy::start(format!("{host}:{port}"));
    let through_proxy = t.url.replacen(&format!("{host}:{port}"), &proxy.addr, 1);
    assert_ne!(through_proxy, t.url, "the test url names host:port");

    let enqueue = |from: usize, to: usize| {
        dj::enqueue_many(
            &t.db,
            (from..to).map(|i| Record {
                log: log.path(),
                key: i.to_string(),
            }),
        )
        .unwrap();
    };
    enqueue(0, 100);
    let out = std::fs::File::create(t.dir.join("w.log")).unwrap();
    let mut w = std::process::Command::new(env!("CARGO_BIN_EXE_dj-test-worker"))
        .args(["work", "--sleep-delay", "0.2"])
        .env("DATABASE_URL", &through_proxy)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    assert!(
        log.wait_for("perform 99", Duration::from_secs(30)),
        "first batch"
    );

    proxy.cut();
    enqueue(100, 200); // written directly while the worker cannot reach the database
    std::thread::sleep(Duration::from_secs(2));
    proxy.restore();

    let all = log.wait_for("perform 199", Duration::from_secs(60));
    signal(&w, libc::SIGTERM);
    let status = wait_exit(&mut w, Duration::from_secs(30));
    let output = worker_output(&t, "w");
    assert!(all, "the worker recovered after the outage\n{output}");
    assert!(status.success(), "{status}\n{output}");
    // The outage was felt: by a claim, or, when the cut came as the first batch's outcomes
    // were being written (a fast lane's end, or the ordinary write no lane opens during), by
    // that write, which the worker then waits for.
    assert!(
        [
            "Error while reserving job",
            "Error while ending a fast lane",
            "Error while recording job outcomes"
        ]
        .iter()
        .any(|error| output.contains(error)),
        "{output}"
    );
    let lines = log.lines();
    let unique: std::collections::HashSet<_> = lines.iter().collect();
    assert_eq!(unique.len(), 200, "every job performed");
    assert_eq!(lines.len(), 200, "none twice");
    assert_eq!(t.db.count_jobs(&dj::JobFilter::default()).unwrap(), 0);
}

/// `--wait-for-database 2s` on a port nobody listens on: `workoff`, `work` given the bound,
/// and the read and admin commands fail with a message naming the database (without its
/// password) and the flag, instead of waiting forever.
fn bounded_wait(backend: Backend) {
    let t = TestDb::new(backend, "boundedwait");
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("postgres://postgres:hunter2@127.0.0.1:{port}/test");
    let shown = format!("postgres://postgres:***@127.0.0.1:{port}/test");
    for command in [
        &["workoff"][..],
        &["work"],
        &["jobs"],
        &["stats"],
        &["migrate"],
        &["retry", "--failed", "--yes"],
    ] {
        let label = command[0];
        let mut args = vec!["--database-url", &url, "--wait-for-database", "2s"];
        args.extend(command);
        let mut child = spawn_worker(&t, label, &args);
        let status = wait_exit(&mut child, Duration::from_secs(30));
        let out = worker_output(&t, label);
        assert!(!status.success(), "{label}: {status}\n{out}");
        assert!(
            out.contains(&format!("error: {shown} did not answer within 2s"))
                && out.contains("`--wait-for-database`"),
            "{label}:\n{out}"
        );
        assert!(!out.contains("hunter2"), "{label}:\n{out}");
    }
}
