//! Unique jobs and per-key concurrency limits: one row per key under 100 concurrent
//! enqueues, skip, replace and debounce, keys freed when a job starts (or, held until done,
//! when it finishes), duplicates inside one `enqueue_many` and inside the caller's
//! transaction; and a limit of one per key across worker processes, by a database-side count.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use dj::{EnqueueOutcome, Job, JobFilter, OnDuplicate};
use dj_tests::jobs::{CountsKey, SyncCustomer, UniqueProbe};
use dj_tests::support::{Backend, TestDb};

use crate::operations::wait_until;
use crate::order::serial;
use crate::processes::{signal, spawn_worker, wait_exit, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "unique_key_under_100_concurrent_enqueues_inserts_one_row",
        concurrent,
    ),
    (
        "unique_replace_and_debounce_update_the_waiting_job",
        replace,
    ),
    ("unique_key_is_freed_at_start_or_held_until_done", freed),
    (
        "unique_duplicates_in_enqueue_many_and_in_a_transaction",
        many_and_transaction,
    ),
    (
        "concurrency_key_limit_holds_across_worker_processes",
        per_key,
    ),
];

fn sync(log: &str, customer: i64, version: u32) -> SyncCustomer {
    SyncCustomer {
        log: log.to_owned(),
        customer,
        version,
    }
}

fn concurrent(backend: Backend) {
    let t = TestDb::new(backend, "unique_concurrent");
    let log = t.log();
    let threads = 100;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (db, barrier, log) = (t.db.clone(), barrier.clone(), log.path());
            std::thread::spawn(move || {
                barrier.wait();
                sync(&log, 7, i as u32)
                    .delay()
                    .run_in(Duration::from_secs(3600))
                    .enqueue_outcome(&db)
                    .unwrap()
            })
        })
        .collect();
    let outcomes: Vec<EnqueueOutcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let inserted: Vec<_> = outcomes.iter().filter(|o| !o.is_duplicate()).collect();
    assert_eq!(inserted.len(), 1, "{outcomes:?}");
    let id = inserted[0].id();
    assert!(
        outcomes.iter().all(|o| o.id() == id
            && matches!(
                o,
                EnqueueOutcome::Inserted(_) | EnqueueOutcome::Duplicate(_)
            )),
        "every duplicate names the one row: {outcomes:?}"
    );
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 1);
    let row = t.db.job(id).unwrap().unwrap();
    assert_eq!(row.unique_key.as_deref(), Some("SyncCustomer/[7]"));

    // Another key is another job; after the job ran, its key is free again.
    let other = sync(&log.path(), 8, 0)
        .delay()
        .enqueue_outcome(&t.db)
        .unwrap();
    assert!(matches!(other, EnqueueOutcome::Inserted(_)), "{other:?}");
    t.db.retry_jobs(&JobFilter::default()).unwrap(); // run the scheduled one now
    assert_eq!(serial(&t).work_off(10).unwrap().succeeded, 2);
    let again = sync(&log.path(), 7, 100)
        .delay()
        .enqueue_outcome(&t.db)
        .unwrap();
    assert!(
        matches!(again, EnqueueOutcome::Inserted(new) if new != id),
        "{again:?}"
    );
}

fn replace(backend: Backend) {
    let t = TestDb::new(backend, "unique_replace");
    let log = t.log();
    let hour = Duration::from_secs(3600);
    let first = sync(&log.path(), 1, 1)
        .delay()
        .run_in(hour)
        .enqueue_outcome(&t.db)
        .unwrap();
    let id = first.id();
    // Skip (the default): nothing changes.
    let skipped = sync(&log.path(), 1, 2)
        .delay()
        .run_in(hour * 5)
        .enqueue_outcome(&t.db)
        .unwrap();
    assert_eq!(skipped, EnqueueOutcome::Duplicate(id));
    let row = t.db.job(id).unwrap().unwrap();
    assert!(row.handler.contains("\"version\":1"), "{}", row.handler);
    // Replace: the new payload, priority and run time.
    let replaced = sync(&log.path(), 1, 3)
        .delay()
        .on_duplicate(OnDuplicate::Replace)
        .priority(-3)
        .run_in(hour * 2)
        .enqueue_outcome(&t.db)
        .unwrap();
    assert_eq!(replaced, EnqueueOutcome::Replaced(id));
    let row = t.db.job(id).unwrap().unwrap();
    assert!(row.handler.contains("\"version\":3"), "{}", row.handler);
    assert_eq!(row.priority, -3);
    let in_secs = t.secs_from_now(row.run_at);
    assert!((7100.0..7300.0).contains(&in_secs), "run_at in {in_secs} s");
    // Debounce: each enqueue moves the job to the window from now.
    for version in 4..7 {
        let debounced = sync(&log.path(), 1, version)
            .delay()
            .debounce(Duration::from_secs(30))
            .enqueue_outcome(&t.db)
            .unwrap();
        assert_eq!(debounced, EnqueueOutcome::Replaced(id));
    }
    let row = t.db.job(id).unwrap().unwrap();
    assert!(row.handler.contains("\"version\":6"), "{}", row.handler);
    let in_secs = t.secs_from_now(row.run_at);
    assert!((25.0..35.0).contains(&in_secs), "run_at in {in_secs} s");
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 1);
    t.db.retry_jobs(&JobFilter::default()).unwrap();
    assert_eq!(serial(&t).work_off(10).unwrap().succeeded, 1);
    assert_eq!(log.lines(), ["sync 1 6"]);
}

fn freed(backend: Backend) {
    let t = TestDb::new(backend, "unique_freed");
    let log = t.log();
    for (until_done, expected) in [(false, "inner inserted"), (true, "inner duplicate")] {
        let probe = UniqueProbe {
            log: log.path(),
            until_done,
            outer: true,
        };
        let id = probe.delayed().enqueue(&t.db).unwrap();
        assert_eq!(serial(&t).work_off(1).unwrap().succeeded, 1);
        assert_eq!(log.lines().last().map(String::as_str), Some(expected));
        assert!(t.db.job(id).unwrap().is_none());
        // Either way the key is free once the job is done (the inner one, if inserted,
        // holds it now: work it off too).
        serial(&t).work_off(10).unwrap();
        let next = UniqueProbe {
            log: log.path(),
            until_done,
            outer: false,
        }
        .delayed()
        .enqueue_outcome(&t.db)
        .unwrap();
        assert!(matches!(next, EnqueueOutcome::Inserted(_)), "{next:?}");
        serial(&t).work_off(10).unwrap();
    }
    // A job that fails for good frees its key, and is kept without it.
    let failing = dj_tests::jobs::AlwaysFails {
        log: log.path(),
        key: "x".into(),
    }
    .delay()
    .unique("fails")
    .enqueue(&t.db)
    .unwrap();
    serial(&t)
        .max_attempts(1)
        .destroy_failed_jobs(false)
        .work_off(1)
        .unwrap();
    let row = t.db.job(failing).unwrap().expect("kept");
    assert!(
        row.failed_at.is_some() && row.unique_key.is_none(),
        "{row:?}"
    );
    let next = dj_tests::jobs::AlwaysFails {
        log: log.path(),
        key: "x".into(),
    }
    .delay()
    .unique("fails")
    .enqueue_outcome(&t.db)
    .unwrap();
    assert!(
        matches!(next, EnqueueOutcome::Inserted(n) if n != failing),
        "{next:?}"
    );
}

fn many_and_transaction(backend: Backend) {
    let t = TestDb::new(backend, "unique_many");
    let log = t.log();
    let held = sync(&log.path(), 1, 0).delay().enqueue(&t.db).unwrap();
    // Customer 1 is held already; customer 2 appears twice in the call; 3 once.
    let outcomes = dj::enqueue_many_outcomes(
        &t.db,
        [(1, 1), (2, 1), (2, 2), (3, 1)].map(|(c, v)| sync(&log.path(), c, v)),
    )
    .unwrap();
    assert_eq!(outcomes[0], EnqueueOutcome::Duplicate(held));
    assert!(
        matches!(outcomes[1], EnqueueOutcome::Inserted(_)),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], EnqueueOutcome::Duplicate(outcomes[1].id()));
    assert!(
        matches!(outcomes[3], EnqueueOutcome::Inserted(_)),
        "{outcomes:?}"
    );
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 3);
    // The async form says the same of the same jobs, inserting nothing more.
    let again = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(dj::enqueue_many_outcomes_async(
            &t.db,
            [(1, 1), (2, 1), (2, 2), (3, 1)].map(|(c, v)| sync(&log.path(), c, v)),
        ))
        .unwrap();
    let ids = |o: &[EnqueueOutcome]| o.iter().map(|o| o.id()).collect::<Vec<_>>();
    assert!(again.iter().all(|o| o.is_duplicate()), "{again:?}");
    assert_eq!(ids(&again), ids(&outcomes));
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 3);

    // In the caller's transaction: a rolled-back unique enqueue leaves its key free.
    let job = || sync(&log.path(), 9, 0).delay();
    match backend {
        Backend::Postgres => {
            let mut client = t.pg_client();
            let mut tx = client.transaction().unwrap();
            assert!(matches!(
                job().enqueue_outcome(&mut tx).unwrap(),
                EnqueueOutcome::Inserted(_)
            ));
            assert!(job().enqueue_outcome(&mut tx).unwrap().is_duplicate());
            tx.rollback().unwrap();
        }
        Backend::Sqlite => {
            let mut conn = rusqlite::Connection::open(t.sqlite_path()).unwrap();
            let tx = conn.transaction().unwrap();
            assert!(matches!(
                job().enqueue_outcome(&tx).unwrap(),
                EnqueueOutcome::Inserted(_)
            ));
            assert!(job().enqueue_outcome(&tx).unwrap().is_duplicate());
            tx.rollback().unwrap();
        }
        Backend::Mysql => {
            let mut conn = t.mysql_conn();
            let mut tx = conn.start_transaction(mysql::TxOpts::default()).unwrap();
            assert!(matches!(
                job().enqueue_outcome(&mut tx).unwrap(),
                EnqueueOutcome::Inserted(_)
            ));
            assert!(job().enqueue_outcome(&mut tx).unwrap().is_duplicate());
            tx.rollback().unwrap();
        }
    }
    assert!(matches!(
        job().enqueue_outcome(&t.db).unwrap(),
        EnqueueOutcome::Inserted(_)
    ));
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 4);
}

fn per_key(backend: Backend) {
    let t = TestDb::new(backend, "per_key");
    let log = t.log();
    let jobs = 50;
    dj::enqueue_many(
        &t.db,
        (0..jobs).map(|i| CountsKey {
            log: log.path(),
            customer: i % 2,
        }),
    )
    .unwrap();
    let mut workers: Vec<_> = (0..4)
        .map(|i| {
            spawn_worker(
                &t,
                &format!("w{i}"),
                &["work", "--concurrency", "3", "--sleep-delay", "0.1"],
            )
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(90), || log.count_prefix("key")
            == jobs as usize),
        "all run: {}",
        worker_output(&t, "w0")
    );
    let counts: Vec<usize> = log
        .lines()
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    println!(
        "{}: most running at once per key under a limit of 1: {}",
        backend.name(),
        counts.iter().max().unwrap()
    );
    assert!(counts.iter().all(|&n| n == 1), "limit broken: {counts:?}");
    for w in &workers {
        signal(w, libc::SIGTERM);
    }
    for w in &mut workers {
        assert!(wait_exit(w, Duration::from_secs(30)).success());
    }
}
