//! Enqueue from SQL (migration 0010): the `dj_enqueue` view on PostgreSQL and SQLite, the
//! `dj_enqueue` procedure on MySQL (which has no view to insert into), and PostgreSQL's
//! `dj_enqueue` and `dj_enqueue_many` functions. Rows made there are the rows dj's enqueue
//! makes, refused where dj's enqueue refuses, all or none, and they wake an idle worker.

use std::time::Duration;

use dj::{Job, JobFilter};
use dj_tests::jobs::{Record, RecordsInfo};
use dj_tests::support::{Backend, TestDb};

use crate::operations::wait_until;
use crate::order::serial;
use crate::processes::{signal, spawn_worker, wait_exit, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    ("sql_enqueued_jobs_are_the_rows_enqueue_makes", same_rows),
    ("sql_enqueue_refuses_what_enqueue_refuses", same_refusals),
    ("sql_enqueue_of_several_rows_is_all_or_none", all_or_none),
    (
        "a_trigger_enqueues_a_job_an_idle_worker_runs",
        trigger_example,
    ),
];

pub const POSTGRES_CASES: &[Case] = &[("dj_enqueue_functions_return_ids_in_order", functions)];

/// Runs one statement of raw SQL; the database's error message if it fails.
fn sql(t: &TestDb, text: &str) -> Result<(), String> {
    match t.backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(t.sqlite_path()).expect("open sqlite");
            conn.busy_timeout(Duration::from_secs(10))
                .expect("busy timeout");
            conn.execute_batch(text).map_err(|e| e.to_string())
        }
        Backend::Postgres => t
            .pg_client()
            .batch_execute(text)
            .map_err(|e| match e.as_db_error() {
                Some(db) => db.message().to_owned(),
                None => e.to_string(),
            }),
        Backend::Mysql => {
            dj_tests::support::mysql_script(&mut t.mysql_conn(), text).map_err(|e| match e {
                mysql::Error::MySqlError(e) => e.message,
                e => e.to_string(),
            })
        }
    }
}

/// Enqueues `rows` from SQL, each the values (SQL expressions) of `columns` (`job`, `args`,
/// `queue`, `priority`, `max_run_time`), in one statement: an `INSERT` into the `dj_enqueue`
/// view, or on MySQL a `CALL` of the `dj_enqueue` procedure per row in one transaction
/// (which a failed call leaves uncommitted, and the connection's end rolls back).
fn enqueue_sql(t: &TestDb, columns: &[&str], rows: &[&[&str]]) -> Result<(), String> {
    if t.backend != Backend::Mysql {
        let values: Vec<String> = rows
            .iter()
            .map(|row| format!("({})", row.join(", ")))
            .collect();
        return sql(
            t,
            &format!(
                "INSERT INTO dj_enqueue ({}) VALUES {}",
                columns.join(", "),
                values.join(", ")
            ),
        );
    }
    let parameters = ["job", "args", "queue", "priority", "run_at", "max_run_time"];
    let calls: Vec<String> = rows
        .iter()
        .map(|row| {
            let value =
                |name: &str| (columns.iter().position(|c| *c == name)).map_or("NULL", |i| row[i]);
            let arguments: Vec<&str> = parameters.iter().map(|p| value(p)).collect();
            format!("CALL dj_enqueue({}, @dj_id)", arguments.join(", "))
        })
        .collect();
    sql(
        t,
        &format!("START TRANSACTION; {}; COMMIT", calls.join("; ")),
    )
}

/// A SQL string literal of `text`.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Everything of a row but its id and times.
fn shape(row: &dj::JobRow) -> (String, serde_json::Value, i32, Option<String>, Option<i32>) {
    let handler: serde_json::Value = serde_json::from_str(&row.handler).expect("handler JSON");
    (
        row.name.clone(),
        handler,
        row.priority,
        row.queue.clone(),
        row.max_run_time,
    )
}

/// A job inserted through the view has the row `enqueue` makes of the same job, and a worker
/// performs it with its queue and priority.
fn same_rows(backend: Backend) {
    let t = TestDb::new(backend, "sql_rows");
    let log = t.log();
    let job = RecordsInfo { log: log.path() };
    let by_rust = job
        .clone()
        .delay()
        .queue("mail")
        .priority(7)
        .enqueue(&t.db)
        .unwrap();
    let args = serde_json::to_string(&job).unwrap();
    let (name, args) = (literal(RecordsInfo::NAME), literal(&args));
    enqueue_sql(
        &t,
        &["job", "args", "queue", "priority"],
        &[&[&name, &args, "'mail'", "7"]],
    )
    .unwrap();
    let rows = t.db.jobs(&JobFilter::default()).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let by_sql = rows.iter().find(|r| r.id != by_rust).unwrap();
    let rust_row = rows.iter().find(|r| r.id == by_rust).unwrap();
    assert_eq!(shape(by_sql), shape(rust_row));
    assert!(t.secs_from_now(by_sql.run_at).abs() < 5.0, "{by_sql:?}");

    // Defaults: no args, queue or priority given.
    let record = Record {
        log: log.path(),
        key: "from-sql".into(),
    };
    let args = literal(&serde_json::to_string(&record).unwrap());
    enqueue_sql(&t, &["job", "args"], &[&["'Record'", &args]]).unwrap();
    let report = serial(&t).work_off(10).unwrap();
    assert_eq!(report.succeeded, 3, "{report:?}");
    assert_eq!(log.count("info mail 7"), 2, "{:?}", log.lines());
    assert_eq!(log.count("perform from-sql"), 1, "{:?}", log.lines());
}

/// For every queue name, SQL refuses it exactly when `enqueue` does; and a missing job name,
/// bad JSON, an oversized handler and a zero max_run_time are refused with the rule named.
/// Nothing refused is stored.
fn same_refusals(backend: Backend) {
    let t = TestDb::new(backend, "sql_refusals");
    let names = [
        "mail".to_owned(),
        "ünïcödé queue".to_owned(),
        "q".repeat(255),
        "q".repeat(256),
        String::new(),
        " mail".to_owned(),
        "mail ".to_owned(),
        "mail\u{3000}".to_owned(),
        "\u{a0}mail".to_owned(),
        "a,b".to_owned(),
        "a\nb".to_owned(),
        "a\tb".to_owned(),
        "a\u{7f}b".to_owned(),
        "a\u{85}b".to_owned(),
        "'; DELETE FROM delayed_jobs; --".to_owned(),
    ];
    let job = Record {
        log: "unused".into(),
        key: "k".into(),
    };
    let mut accepted = 0;
    for name in &names {
        let by_rust = job.clone().delay().queue(name.as_str()).enqueue(&t.db);
        let by_sql = enqueue_sql(&t, &["job", "queue"], &[&["'Record'", &literal(name)]]);
        assert_eq!(
            by_rust.is_ok(),
            by_sql.is_ok(),
            "{name:?}: {by_rust:?} {by_sql:?}"
        );
        if let Err(e) = by_sql {
            assert!(e.contains("invalid queue name"), "{name:?}: {e}");
        } else {
            accepted += 2;
        }
    }
    assert_eq!(accepted, 2 * 4, "the four valid names");
    let stored = t.db.count_jobs(&JobFilter::default()).unwrap();
    assert_eq!(stored, accepted);

    let big = format!(
        "{{\"log\": \"{}\", \"key\": \"big\"}}",
        "x".repeat(dj::MAX_HANDLER_BYTES)
    );
    let big = literal(&big);
    let refusals: [(&[&str], &[&str], &str); 4] = [
        (&["job"], &["''"], "needs its name"),
        (&["job"], &["NULL"], "needs its name"),
        (&["job", "max_run_time"], &["'Record'", "0"], "max_run_time"),
        (&["job", "args"], &["'Record'", &big], "1048576"),
    ];
    for (columns, row, says) in refusals {
        let err = enqueue_sql(&t, columns, &[row]).unwrap_err();
        assert!(err.contains(says), "{columns:?}: {err}");
    }
    let bad_json = enqueue_sql(&t, &["job", "args"], &[&["'Record'", "'{bad'"]]);
    assert!(bad_json.is_err(), "bad JSON was stored");
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), stored);
}

/// Several rows in one INSERT: one bad row and none is stored; all good, all are.
fn all_or_none(backend: Backend) {
    let t = TestDb::new(backend, "sql_all_or_none");
    let columns = ["job", "queue"];
    let err = enqueue_sql(
        &t,
        &columns,
        &[
            &["'Record'", "'a'"],
            &["'Record'", "'b'"],
            &["'Record'", "'c,d'"],
        ],
    )
    .unwrap_err();
    assert!(err.contains("invalid queue name"), "{err}");
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
    enqueue_sql(
        &t,
        &columns,
        &[
            &["'Record'", "'a'"],
            &["'Record'", "'b'"],
            &["'Record'", "'c'"],
        ],
    )
    .unwrap();
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 3);
}

/// The README's trigger: a signup row enqueues a job in the same transaction, and a worker
/// polling once a minute runs it within seconds (the insert wakes it).
fn trigger_example(backend: Backend) {
    let t = TestDb::new(backend, "sql_trigger");
    let log = t.log();
    let log_path = literal(&log.path());
    let setup = match backend {
        Backend::Postgres => format!(
            "CREATE TABLE signups (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL);
             CREATE FUNCTION signups_welcome() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 PERFORM dj_enqueue('Record', jsonb_build_object('log', {log_path}::text, 'key', NEW.email),
                                    queue => 'mail');
                 RETURN NEW;
             END;
             $$;
             CREATE TRIGGER signups_welcome AFTER INSERT ON signups
                 FOR EACH ROW EXECUTE FUNCTION signups_welcome();"
        ),
        Backend::Sqlite => format!(
            "CREATE TABLE signups (id INTEGER PRIMARY KEY, email TEXT NOT NULL);
             CREATE TRIGGER signups_welcome AFTER INSERT ON signups
             BEGIN
                 INSERT INTO dj_enqueue (job, args, queue)
                 VALUES ('Record', json_object('log', {log_path}, 'key', NEW.email), 'mail');
             END;"
        ),
        // One statement as the trigger's body: no BEGIN ... END, which a client's statement
        // splitting would cut at its `;`.
        Backend::Mysql => format!(
            "CREATE TABLE signups (id BIGINT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(255) NOT NULL);
             CREATE TRIGGER signups_welcome AFTER INSERT ON signups FOR EACH ROW
                 CALL dj_enqueue('Record', JSON_OBJECT('log', {log_path}, 'key', NEW.email),
                                 'mail', NULL, NULL, NULL, @dj_id);"
        ),
    };
    sql(&t, &setup).unwrap();
    let mut w = spawn_worker(
        &t,
        "w",
        &["work", "--sleep-delay", "60", "--queues", "mail"],
    );
    // Idle, for a minute.
    std::thread::sleep(Duration::from_millis(1500));
    sql(&t, "INSERT INTO signups (email) VALUES ('ada@example.com')").unwrap();
    let ran = wait_until(Duration::from_secs(10), || {
        log.count("perform ada@example.com") == 1
    });
    // A signup rolled back enqueues nothing.
    let rolled_back = sql(
        &t,
        "BEGIN; INSERT INTO signups (email) VALUES ('gone@example.com'); ROLLBACK;",
    );
    signal(&w, libc::SIGTERM);
    let status = wait_exit(&mut w, Duration::from_secs(15));
    assert!(ran, "{}", worker_output(&t, "w"));
    rolled_back.unwrap();
    assert!(status.success(), "{}", worker_output(&t, "w"));
    assert_eq!(log.count("perform gone@example.com"), 0);
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
}

/// PostgreSQL's functions: `dj_enqueue` returns the id, takes named arguments and a run time;
/// `dj_enqueue_many` returns ids in the array's order, all or none, and names an unknown key.
fn functions(backend: Backend) {
    let t = TestDb::new(backend, "sql_functions");
    let mut client = t.pg_client();
    let id: i64 = client
        .query_one(
            "SELECT dj_enqueue('Record', '{\"log\": \"unused\", \"key\": \"k\"}', \
             queue => 'mail', priority => 3, run_at => now() + interval '1 hour', \
             max_run_time => 60)",
            &[],
        )
        .unwrap()
        .get(0);
    let row = t.db.job(id).unwrap().expect("the row dj_enqueue returned");
    assert_eq!(
        (row.queue.as_deref(), row.priority, row.max_run_time),
        (Some("mail"), 3, Some(60))
    );
    assert!(
        (t.secs_from_now(row.run_at) - 3600.0).abs() < 10.0,
        "{row:?}"
    );

    let ids: Vec<i64> = client
        .query(
            "SELECT dj_enqueue_many('[{\"job\": \"Record\", \"queue\": \"a\"}, \
                                      {\"job\": \"Record\", \"queue\": \"b\", \"priority\": 2}]')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 2);
    let queues: Vec<Option<String>> = ids
        .iter()
        .map(|&id| t.db.job(id).unwrap().unwrap().queue)
        .collect();
    assert_eq!(queues, [Some("a".to_owned()), Some("b".to_owned())]);

    let before = t.db.count_jobs(&JobFilter::default()).unwrap();
    for (text, says) in [
        (
            "SELECT dj_enqueue_many('[{\"job\": \"Record\"}, {\"job\": \"Record\", \"queue\": \"\"}]')",
            "invalid queue name",
        ),
        (
            "SELECT dj_enqueue_many('[{\"job\": \"Record\", \"quue\": \"a\"}]')",
            "unknown key \"quue\"",
        ),
        ("SELECT dj_enqueue_many('{}')", "JSON array of objects"),
    ] {
        let err = sql(&t, text).unwrap_err();
        assert!(err.contains(says), "{text}: {err}");
    }
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), before);

    let returned: i64 = client
        .query_one(
            "INSERT INTO dj_enqueue (job, queue) VALUES ('Record', 'c') RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        t.db.job(returned).unwrap().unwrap().queue.as_deref(),
        Some("c")
    );
}
