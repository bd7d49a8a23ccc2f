//! Deadlines and the connection budget: a database that accepts and never answers, one that
//! freezes mid-conversation, a worker on a frozen database told to stop, a pool with every
//! connection in use, and every `Db` method called from inside a tokio runtime.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dj::{Job, JobFilter};
use dj_tests::jobs::{Record, Sleeps};
use dj_tests::net::{FreezingProxy, SilentServer};
use dj_tests::support::{postgres_base_url, Backend, TestDb};

use crate::operations::wait_until;
use crate::processes::{signal, spawn_bin_at, wait_exit, worker_output};
use crate::Case;

const WORKER: &str = env!("CARGO_BIN_EXE_dj-test-worker");

pub const CASES: &[Case] = &[
    (
        "pool_exhausted_is_a_clear_error_after_pool_timeout",
        pool_exhausted,
    ),
    (
        "every_db_method_works_inside_a_tokio_runtime_of_either_flavour",
        inside_tokio,
    ),
];

pub const POSTGRES_CASES: &[Case] = &[
    (
        "silent_server_enqueue_fails_within_the_connect_timeout",
        silent_server,
    ),
    (
        "frozen_server_statement_fails_within_its_deadline_and_the_db_recovers",
        frozen_server,
    ),
    (
        "worker_on_a_frozen_server_exits_promptly_on_term_and_loses_nothing",
        frozen_server_worker,
    ),
];

/// `url` with more query parameters.
fn with_params(url: &str, params: &str) -> String {
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}{params}")
}

/// The test server's address, and the test URL pointed at `port` on loopback instead.
fn through_port(t: &TestDb, port: u16) -> (SocketAddr, String) {
    let config: postgres::Config = postgres_base_url().parse().expect("the test url");
    let host = match &config.get_hosts()[0] {
        postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("the test server must be reached over TCP, not {other:?}"),
    };
    let server_port = config.get_ports().first().copied().unwrap_or(5432);
    let server: SocketAddr = format!("{host}:{server_port}")
        .parse()
        .expect("the test server is given by IP address");
    let url = t.url.replacen(
        &format!("{host}:{server_port}"),
        &format!("127.0.0.1:{port}"),
        1,
    );
    assert_ne!(url, t.url, "the test url names {host}:{server_port}");
    (server, url)
}

/// Enqueues a job whose perform writes to /dev/null.
fn greet(db: &dj::Db) -> dj::Result<i64> {
    record("deadline").delay().enqueue(db)
}

fn record(key: &str) -> Record {
    Record {
        log: "/dev/null".into(),
        key: key.into(),
    }
}

fn pool_exhausted(backend: Backend) {
    let t = TestDb::new(backend, "pool_exhausted");
    let db = dj::Db::open(&with_params(&t.url, "pool_size=1&pool_timeout=300ms")).unwrap();
    greet(&db).unwrap();
    // Another session takes the write lock, so the pool's one connection waits inside a
    // delete until it is released.
    let blocker = match backend {
        Backend::Postgres => {
            let mut client = t.pg_client();
            client
                .batch_execute("BEGIN; LOCK TABLE delayed_jobs IN ACCESS EXCLUSIVE MODE")
                .unwrap();
            Blocker::Postgres(client)
        }
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(t.sqlite_path()).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            Blocker::Sqlite(conn)
        }
        Backend::Mysql => {
            use mysql::prelude::Queryable;
            let mut conn = t.mysql_conn();
            conn.query_drop("BEGIN").unwrap();
            conn.query_drop("SELECT id FROM delayed_jobs FOR UPDATE")
                .unwrap();
            Blocker::Mysql(conn)
        }
    };
    let holder = {
        let db = db.clone();
        std::thread::spawn(move || db.delete_jobs(&JobFilter::default()))
    };
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let err = db.count_jobs(&JobFilter::default()).unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, dj::Error::PoolExhausted { size: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("pool_size"), "{err}");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "waited {waited:?} for a connection, with pool_timeout=300ms"
    );
    drop(blocker);
    assert_eq!(holder.join().unwrap().unwrap(), 1, "the held delete ran");
    assert_eq!(
        db.count_jobs(&JobFilter::default()).unwrap(),
        0,
        "the pool is back"
    );
}

enum Blocker {
    Postgres(postgres::Client),
    Sqlite(rusqlite::Connection),
    Mysql(mysql::Conn),
}

impl Drop for Blocker {
    fn drop(&mut self) {
        match self {
            Blocker::Postgres(client) => client.batch_execute("COMMIT").unwrap(),
            Blocker::Sqlite(conn) => conn.execute_batch("COMMIT").unwrap(),
            Blocker::Mysql(conn) => mysql::prelude::Queryable::query_drop(conn, "COMMIT").unwrap(),
        }
    }
}

/// Every `Db` method (and a worker's `work_off`) from inside a runtime: no panic, and the
/// answers are right.
fn inside_tokio(backend: Backend) {
    let t = TestDb::new(backend, "inside_tokio");
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    current.block_on(async { every_db_method(&t, "current") });
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    multi.block_on(async { every_db_method(&t, "multi") });
    // And inside a task on a worker thread of the multi-thread runtime.
    let url = t.url.clone();
    multi
        .block_on(multi.spawn(async move {
            let db = dj::Db::open(&url).unwrap();
            greet(&db).unwrap();
            assert_eq!(dj::Worker::new(db).work_off(10).unwrap().succeeded, 1);
        }))
        .unwrap();
}

fn every_db_method(t: &TestDb, label: &str) {
    let db = dj::Db::open(&t.url).unwrap();
    assert!(
        db.migrate().unwrap().is_empty(),
        "{label}: already migrated"
    );
    assert!(db.url().starts_with(&t.backend.name()[..4]), "{label}");
    db.now().unwrap();
    let id = greet(&db).unwrap();
    let ids = dj::enqueue_many(&db, (0..3).map(|i| record(&format!("{i}")))).unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(db.job(id).unwrap().unwrap().id, id);
    assert_eq!(db.jobs(&JobFilter::default()).unwrap().len(), 4);
    assert_eq!(db.count_jobs(&JobFilter::default()).unwrap(), 4);
    assert_eq!(db.stats().unwrap()[0].ready, 4);
    assert_eq!(db.retry_jobs(&JobFilter::default()).unwrap(), 4);
    assert_eq!(db.unlock_worker("nobody").unwrap(), 0);
    assert!(db.workers().unwrap().is_empty());
    assert!(db.lockers().unwrap().is_empty());
    let report = dj::Worker::new(db.clone()).work_off(2).unwrap();
    assert_eq!(report.succeeded, 2, "{label}");
    assert_eq!(db.delete_jobs(&JobFilter::default()).unwrap(), 2);
    // Many calls in one task, which never yields: they must not spend the task's
    // cooperative budget (once spent, tokio's timers would answer "not yet" forever).
    for _ in 0..300 {
        assert_eq!(db.count_jobs(&JobFilter::default()).unwrap(), 0, "{label}");
    }
}

fn silent_server(_backend: Backend) {
    let server = SilentServer::start();
    let port = server.port();
    for (params, bound) in [("?connect_timeout=1", 1), ("", 5)] {
        let db = dj::Db::open(&format!(
            "postgres://postgres@127.0.0.1:{port}/test{params}"
        ))
        .unwrap();
        let started = Instant::now();
        let err = greet(&db).unwrap_err();
        let took = started.elapsed();
        println!("silent server, connect deadline {bound}s: enqueue failed after {took:.2?}");
        assert!(matches!(err, dj::Error::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("did not answer"), "{err}");
        let bound = Duration::from_secs(bound);
        assert!(
            took >= bound - Duration::from_millis(100) && took < bound + Duration::from_secs(3),
            "the enqueue failed after {took:?}, with a connect deadline of {bound:?}"
        );
    }
}

fn frozen_server(backend: Backend) {
    let t = TestDb::new(backend, "frozen_server");
    let proxy = FreezingProxy::start(through_port(&t, 1).0);
    let url = with_params(
        &through_port(&t, proxy.port()).1,
        "statement_timeout=1s&connect_timeout=1",
    );
    let db = dj::Db::open(&url).unwrap();
    greet(&db).unwrap();
    proxy.freeze();
    for what in ["a statement on a pooled connection", "a new connection"] {
        let started = Instant::now();
        let err = if what == "a new connection" {
            // The pooled connection was closed when its statement ran out of time.
            greet(&db).unwrap_err()
        } else {
            db.count_jobs(&JobFilter::default()).unwrap_err()
        };
        assert!(matches!(err, dj::Error::Timeout { .. }), "{what}: {err}");
        let took = started.elapsed();
        println!("frozen server, 1 s deadlines: {what} failed after {took:.2?}");
        assert!(
            took < Duration::from_secs(4),
            "{what} failed after {took:?}, with 1 s deadlines"
        );
    }
    proxy.thaw();
    assert!(
        wait_until(Duration::from_secs(10), || greet(&db).is_ok()),
        "the Db works again once the server answers"
    );
    assert_eq!(
        t.db.count_jobs(&JobFilter::default()).unwrap(),
        2,
        "no job lost, none doubled"
    );
}

fn frozen_server_worker(backend: Backend) {
    let t = TestDb::new(backend, "frozen_server_worker");
    let log = t.log();
    for i in 0..30 {
        Sleeps {
            log: log.path(),
            key: format!("s{i}"),
            millis: 100,
            max_run_time_secs: None,
        }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    }
    let proxy = FreezingProxy::start(through_port(&t, 1).0);
    let url = with_params(
        &through_port(&t, proxy.port()).1,
        "statement_timeout=2s&connect_timeout=2",
    );
    let args = [
        "work",
        "--sleep-delay",
        "0.2",
        "--heartbeat-timeout",
        "3s",
        "--shutdown-timeout",
        "3s",
    ];
    let mut frozen = spawn_bin_at(WORKER, &t, "frozen", &url, &args);
    assert!(
        wait_until(Duration::from_secs(20), || log.count_prefix("done ") >= 3),
        "the worker ran jobs before the freeze: {}",
        worker_output(&t, "frozen")
    );
    proxy.freeze();
    std::thread::sleep(Duration::from_millis(500));
    signal(&frozen, libc::SIGTERM);
    let started = Instant::now();
    wait_exit(&mut frozen, Duration::from_secs(20));
    let took = started.elapsed();
    println!(
        "{}: TERM -> exit with the database frozen: {took:.2?}",
        backend.name()
    );
    // The shutdown timeout (3 s) for outcomes it cannot write, then deregistering and
    // unlocking, each within its 2 s deadline.
    assert!(
        took < Duration::from_secs(12),
        "the worker took {took:?} to exit on TERM with its database frozen: {}",
        worker_output(&t, "frozen")
    );
    proxy.thaw();
    // Another worker finds the first one dead and finishes the queue.
    let args = ["work", "--sleep-delay", "0.2", "--heartbeat-timeout", "3s"];
    let mut rescuer = spawn_bin_at(WORKER, &t, "rescuer", &t.url, &args);
    let all_done = wait_until(Duration::from_secs(60), || {
        t.db.count_jobs(&JobFilter::default()).unwrap() == 0
    });
    signal(&rescuer, libc::SIGTERM);
    wait_exit(&mut rescuer, Duration::from_secs(30));
    assert!(
        all_done,
        "the queue drained: {}",
        worker_output(&t, "rescuer")
    );
    for i in 0..30 {
        assert!(log.count(&format!("done s{i}")) >= 1, "s{i} was performed");
    }
}
