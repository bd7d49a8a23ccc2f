//! Enqueueing: options, the caller's transaction, bulk inserts, stored names and aliases,
//! registration through the macros, bad input.

use dj::{Job, JobFilter};
use dj_tests::jobs::{Add, Record, Renamed};
use dj_tests::support::{Backend, TestDb};

use crate::order::serial;
use crate::Case;

pub const CASES: &[Case] = &[
    ("enqueue_stores_delayed_jobs_columns", stores_columns),
    (
        "enqueue_in_rolled_back_transaction_leaves_no_job",
        rolled_back,
    ),
    ("enqueue_in_committed_transaction_is_worked", committed),
    ("enqueue_many_inserts_every_job_in_order", enqueue_many),
    ("enqueue_many_is_all_or_none", enqueue_many_all_or_none),
    ("job_fn_is_a_job", job_fn),
    ("explicit_name_and_alias_load", names_and_aliases),
    ("hostile_queue_names_are_data", hostile_queue_names),
    ("oversized_payload_is_refused_with_the_limit", oversized),
    ("missing_table_names_migrate", missing_table),
    ("migrate_is_idempotent", migrate_twice),
    ("bad_database_url_says_what_to_write", bad_url),
];

fn stores_columns(backend: Backend) {
    let t = TestDb::new(backend, "columns");
    let job = Record {
        log: "unused".into(),
        key: "k".into(),
    };
    let id = job
        .delay()
        .priority(4)
        .queue("feeds")
        .enqueue(&t.db)
        .unwrap();
    let row = t.db.job(id).unwrap().unwrap();
    assert_eq!(row.priority, 4);
    assert_eq!(row.attempts, 0);
    assert_eq!(row.queue.as_deref(), Some("feeds"));
    assert_eq!(row.name, "Record");
    assert_eq!(row.locked_at, None);
    assert_eq!(row.locked_by, None);
    assert_eq!(row.failed_at, None);
    assert_eq!(row.last_error, None);
    let handler: serde_json::Value = serde_json::from_str(&row.handler).unwrap();
    assert_eq!(handler["job"], "Record");
    assert_eq!(handler["args"]["key"], "k");
    assert!(t.secs_from_now(row.run_at).abs() < 5.0);
}

fn rolled_back(backend: Backend) {
    let t = TestDb::new(backend, "rollback");
    let log = t.log();
    let job = Record {
        log: log.path(),
        key: "never".into(),
    };
    match backend {
        Backend::Postgres => {
            let mut client = t.pg_client();
            let mut tx = client.transaction().unwrap();
            job.delay().enqueue(&mut tx).unwrap();
            tx.rollback().unwrap();
        }
        Backend::Sqlite => {
            let mut conn = rusqlite::Connection::open(t.sqlite_path()).unwrap();
            let tx = conn.transaction().unwrap();
            job.delay().enqueue(&tx).unwrap();
            tx.rollback().unwrap();
        }
        Backend::Mysql => {
            let mut conn = t.mysql_conn();
            let mut tx = conn.start_transaction(mysql::TxOpts::default()).unwrap();
            job.delay().enqueue(&mut tx).unwrap();
            tx.rollback().unwrap();
        }
    }
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
    assert_eq!(serial(&t).work_off(10).unwrap().succeeded, 0);
    assert!(log.lines().is_empty());
}

fn committed(backend: Backend) {
    let t = TestDb::new(backend, "commit");
    let log = t.log();
    let job = Record {
        log: log.path(),
        key: "kept".into(),
    };
    let id = match backend {
        Backend::Postgres => {
            let mut client = t.pg_client();
            let mut tx = client.transaction().unwrap();
            let id = job.delay().enqueue(&mut tx).unwrap();
            tx.commit().unwrap();
            id
        }
        Backend::Sqlite => {
            let mut conn = rusqlite::Connection::open(t.sqlite_path()).unwrap();
            let tx = conn.transaction().unwrap();
            let id = job.delay().enqueue(&tx).unwrap();
            tx.commit().unwrap();
            id
        }
        Backend::Mysql => {
            let mut conn = t.mysql_conn();
            let mut tx = conn.start_transaction(mysql::TxOpts::default()).unwrap();
            let id = job.delay().enqueue(&mut tx).unwrap();
            tx.commit().unwrap();
            id
        }
    };
    assert!(t.db.job(id).unwrap().is_some());
    assert_eq!(serial(&t).work_off(10).unwrap().succeeded, 1);
    assert_eq!(log.lines(), ["perform kept"]);
}

fn enqueue_many(backend: Backend) {
    let t = TestDb::new(backend, "many");
    let log = t.log();
    let jobs = (0..12_000).map(|i| Record {
        log: log.path(),
        key: i.to_string(),
    });
    let ids = dj::enqueue_many(&t.db, jobs).unwrap();
    assert_eq!(ids.len(), 12_000);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids come back in order"
    );
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 12_000);
    // Each id is its own job's row (MySQL numbers a multi-row insert's rows from the first).
    for i in (0..12_000).step_by(997).chain([11_999]) {
        let row = t.db.job(ids[i]).unwrap().unwrap();
        assert!(
            row.handler.contains(&format!("\"key\":\"{i}\"")),
            "id {} is job {i}'s row: {}",
            ids[i],
            row.handler
        );
    }
}

fn enqueue_many_all_or_none(backend: Backend) {
    let t = TestDb::new(backend, "manyatomic");
    let job = |i: usize| Record {
        log: "unused".into(),
        key: i.to_string(),
    };
    // One bad job among several batches: nothing is inserted.
    let delayed = (0..7_000).map(|i| {
        let d = job(i).delay();
        if i == 6_500 {
            d.queue("bad\nqueue")
        } else {
            d
        }
    });
    assert!(dj::enqueue_many(&t.db, delayed).is_err());
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
    // Several batches inside the caller's transaction roll back with it.
    match backend {
        Backend::Postgres => {
            let mut client = t.pg_client();
            let mut tx = client.transaction().unwrap();
            let ids = dj::enqueue_many(&mut tx, (0..7_000).map(job)).unwrap();
            assert_eq!(ids.len(), 7_000);
            tx.rollback().unwrap();
        }
        Backend::Sqlite => {
            let mut conn = rusqlite::Connection::open(t.sqlite_path()).unwrap();
            let tx = conn.transaction().unwrap();
            let ids = dj::enqueue_many(&tx, (0..7_000).map(job)).unwrap();
            assert_eq!(ids.len(), 7_000);
            tx.rollback().unwrap();
        }
        Backend::Mysql => {
            let mut conn = t.mysql_conn();
            let mut tx = conn.start_transaction(mysql::TxOpts::default()).unwrap();
            let ids = dj::enqueue_many(&mut tx, (0..7_000).map(job)).unwrap();
            assert_eq!(ids.len(), 7_000);
            tx.rollback().unwrap();
        }
    }
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
}

fn job_fn(backend: Backend) {
    let t = TestDb::new(backend, "jobfn");
    let log = t.log();
    let id = Add {
        log: log.path(),
        a: 2,
        b: 40,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let row = t.db.job(id).unwrap().unwrap();
    assert_eq!(row.name, "add");
    assert_eq!(row.queue.as_deref(), Some("math"));
    assert_eq!(serial(&t).work_off(10).unwrap().succeeded, 1);
    assert_eq!(log.lines(), ["sum 42"]);
}

fn names_and_aliases(backend: Backend) {
    let t = TestDb::new(backend, "alias");
    let log = t.log();
    assert_eq!(Renamed::NAME, "renamed.v2");
    Renamed { log: log.path() }.delay().enqueue(&t.db).unwrap();
    // A row written before the type was renamed still loads, through the alias.
    let handler = serde_json::json!({"job": "OldName", "args": {"log": log.path()}}).to_string();
    t.exec(&format!(
        "INSERT INTO delayed_jobs (name, handler, run_at, created_at, updated_at) \
         VALUES ('OldName', '{}', {now}, {now}, {now})",
        handler.replace('\'', "''"),
        now = now_sql(backend)
    ));
    assert_eq!(serial(&t).work_off(10).unwrap().succeeded, 2);
    assert_eq!(log.lines(), ["renamed", "renamed"]);
}

/// The database's now, as SQL text for raw inserts.
pub fn now_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "now()",
        Backend::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
        Backend::Mysql => "UTC_TIMESTAMP(6)",
    }
}

fn hostile_queue_names(backend: Backend) {
    let t = TestDb::new(backend, "hostile");
    let evil = "'; DELETE FROM delayed_jobs; --";
    let job = Record {
        log: "unused".into(),
        key: "k".into(),
    };
    job.clone().delay().queue(evil).enqueue(&t.db).unwrap();
    job.clone().delay().queue("ok").enqueue(&t.db).unwrap();
    let filter = JobFilter {
        queue: Some(evil.to_owned()),
        ..JobFilter::default()
    };
    assert_eq!(t.db.count_jobs(&filter).unwrap(), 1);
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 2);
    let err = job.delay().queue("bad\nname").enqueue(&t.db).unwrap_err();
    assert!(err.to_string().contains("invalid queue name"), "{err}");
}

fn oversized(backend: Backend) {
    let t = TestDb::new(backend, "oversized");
    let job = Record {
        log: "x".repeat(dj::MAX_HANDLER_BYTES),
        key: "big".into(),
    };
    let err = job.delay().enqueue(&t.db).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("over dj's limit of 1048576 bytes"), "{text}");
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
}

fn missing_table(backend: Backend) {
    let t = TestDb::unmigrated(backend, "missing");
    let job = Record {
        log: "unused".into(),
        key: "k".into(),
    };
    let err = job.delay().enqueue(&t.db).unwrap_err();
    assert!(matches!(err, dj::Error::MissingTable { .. }), "{err:?}");
    assert!(err.to_string().contains("run `migrate`"), "{err}");
    let err = serial(&t).work_off(1).unwrap_err();
    assert!(err.to_string().contains("run `migrate`"), "{err}");
}

fn migrate_twice(backend: Backend) {
    let t = TestDb::unmigrated(backend, "migrate");
    assert_eq!(
        t.db.migrate().unwrap(),
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    );
    assert_eq!(t.db.migrate().unwrap(), Vec::<u32>::new());
}

fn bad_url(_backend: Backend) {
    for url in [
        "mongodb://localhost/db",
        "sqlite:",
        "postgres://host:notaport/db",
        "mysql://localhost",
        "mysql://localhost/db?statement_timeout=0",
        "mysql://localhost:notaport/db",
    ] {
        let err = dj::Db::open(url).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("invalid database url"), "{url}: {text}");
    }
    let text = dj::Db::open("redis://x").unwrap_err().to_string();
    assert!(
        text.contains("sqlite:") && text.contains("mysql://"),
        "{text}"
    );
}
