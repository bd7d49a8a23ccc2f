//! The async enqueue API from inside tokio (both runtime flavours): onto `&Db` without
//! blocking the executor, and onto the caller's own sqlx or tokio-postgres transaction, where
//! the job exists only if the caller commits. Options, validation and all-or-none hold as for
//! the sync API. And the sync `enqueue` onto a diesel connection, in its transaction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dj::{Job, JobFilter};
use dj_tests::jobs::Record;
use dj_tests::support::{Backend, TestDb};
use sqlx::Connection as _;

use crate::Case;

pub const CASES: &[Case] = &[
    (
        "enqueue_async_onto_db_leaves_the_executor_free",
        executor_free,
    ),
    (
        "enqueue_async_honours_options_validation_and_all_or_none",
        options_and_validation,
    ),
    (
        "enqueue_async_onto_a_sqlx_transaction_exists_only_if_it_commits",
        sqlx_transaction,
    ),
    (
        "enqueue_onto_a_diesel_transaction_exists_only_if_it_commits",
        diesel_transaction,
    ),
];

pub const POSTGRES_CASES: &[Case] = &[
    (
        "enqueue_async_onto_a_tokio_postgres_transaction_exists_only_if_it_commits",
        tokio_postgres_transaction,
    ),
    (
        "enqueue_many_async_onto_a_tokio_postgres_client_is_all_or_none",
        tokio_postgres_all_or_none,
    ),
];

/// Runs `body` on a current-thread runtime, then on a multi-thread one.
fn in_both_flavours<F: std::future::Future<Output = ()>>(body: impl Fn(&'static str) -> F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(body("current_thread"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(body("multi_thread"));
}

fn record(key: &str) -> Record {
    Record {
        log: "/dev/null".into(),
        key: key.into(),
    }
}

fn count(t: &TestDb) -> i64 {
    t.db.count_jobs(&JobFilter::default()).unwrap()
}

fn executor_free(backend: Backend) {
    let t = TestDb::new(backend, "executor_free");
    // On one thread: a task that ticks every millisecond only runs while the enqueues await.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ticks, took) = runtime.block_on(async {
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(1));
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    every.tick().await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let before = ticks.load(Ordering::SeqCst);
        let started = Instant::now();
        for i in 0..1000 {
            record(&format!("{i}"))
                .delay()
                .enqueue_async(&t.db)
                .await
                .unwrap();
        }
        let took = started.elapsed();
        ticker.abort();
        (ticks.load(Ordering::SeqCst) - before, took)
    });
    assert_eq!(count(&t), 1000);
    let millis = took.as_millis() as u64;
    println!(
        "{}: 1000 enqueue_async in {millis} ms, ticker ticked {ticks} times",
        backend.name()
    );
    assert!(
        ticks * 4 >= millis && ticks >= 20,
        "the ticker ran {ticks} times in {millis} ms of enqueues: the executor was blocked"
    );
}

fn options_and_validation(backend: Backend) {
    let t = TestDb::new(backend, "async_options");
    in_both_flavours(|flavour| {
        let t = &t;
        async move {
            t.db.delete_jobs(&JobFilter::default()).unwrap();
            let id = record("a")
                .delay()
                .priority(7)
                .queue("mail")
                .run_in(Duration::from_secs(3600))
                .enqueue_async(&t.db)
                .await
                .unwrap();
            let row = t.db.job(id).unwrap().unwrap();
            assert_eq!(
                (row.priority, row.queue.as_deref()),
                (7, Some("mail")),
                "{flavour}"
            );
            let ahead = t.secs_from_now(row.run_at);
            assert!(
                (3590.0..3610.0).contains(&ahead),
                "{flavour}: run_at {ahead} s ahead"
            );

            let err = record("b")
                .delay()
                .queue("a,b")
                .enqueue_async(&t.db)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("queue"), "{flavour}: {err}");
            // All or none: one bad item, nothing inserted.
            let jobs = vec![record("c").delay(), record("d").delay().queue("bad\nname")];
            assert!(
                dj::enqueue_many_async(&t.db, jobs).await.is_err(),
                "{flavour}"
            );
            assert_eq!(count(t), 1, "{flavour}");
            let ids = dj::enqueue_many_async(&t.db, (0..3).map(|i| record(&format!("m{i}"))))
                .await
                .unwrap();
            assert_eq!(ids.len(), 3, "{flavour}");
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "{flavour}: ids in order"
            );
            assert_eq!(count(t), 4, "{flavour}");
        }
    });
}

fn sqlx_transaction(backend: Backend) {
    let t = TestDb::new(backend, "sqlx_transaction");
    in_both_flavours(|flavour| {
        let t = &t;
        async move {
            t.db.delete_jobs(&JobFilter::default()).unwrap();
            match backend {
                Backend::Postgres => {
                    let url = dj_tests::support::postgres_base_url();
                    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                    let schema = t.pg_schema().unwrap();
                    sqlx::query(&format!("SET search_path TO {schema}"))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                    sqlx_cases(t, flavour, &mut conn).await;
                }
                Backend::Sqlite => {
                    let options = sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(t.sqlite_path())
                        .busy_timeout(Duration::from_secs(10));
                    let mut conn = sqlx::SqliteConnection::connect_with(&options)
                        .await
                        .unwrap();
                    sqlx_cases(t, flavour, &mut conn).await;
                }
                Backend::Mysql => {
                    let mut conn = sqlx::MySqlConnection::connect(&t.url).await.unwrap();
                    sqlx_cases(t, flavour, &mut conn).await;
                }
            }
            assert_eq!(count(t), 4, "{flavour}");
            let rows = t.db.jobs(&JobFilter::default()).unwrap();
            assert_eq!(rows[0].priority, 3, "{flavour}: options reach the row");
            assert!(rows[0].handler.contains("committed"), "{flavour}");
            let report = dj::Worker::new(t.db.clone()).work_off(10).unwrap();
            assert_eq!(report.succeeded, 4, "{flavour}: the worker performs them");
        }
    });
}

/// Rolled back, committed (one job and two more through `&mut *tx`), and one on the plain
/// connection, for either sqlx backend.
async fn sqlx_cases<C>(t: &TestDb, flavour: &str, conn: &mut C)
where
    C: sqlx::Connection,
    for<'a> &'a mut C: dj::EnqueueAsyncTarget,
    for<'a, 'c> &'a mut sqlx::Transaction<'c, C::Database>: dj::EnqueueAsyncTarget,
    for<'c> sqlx::Transaction<'c, C::Database>: std::ops::DerefMut<Target = C>,
{
    let mut tx = conn.begin().await.unwrap();
    record("rolled back")
        .delay()
        .enqueue_async(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count(t), 0, "{flavour}: a rolled-back job is not there");
    let mut tx = conn.begin().await.unwrap();
    record("committed")
        .delay()
        .priority(3)
        .enqueue_async(&mut tx)
        .await
        .unwrap();
    dj::enqueue_many_async(&mut *tx, (0..2).map(|i| record(&format!("{i}"))))
        .await
        .unwrap();
    assert_eq!(count(t), 0, "{flavour}: not visible before the commit");
    tx.commit().await.unwrap();
    record("plain")
        .delay()
        .enqueue_async(&mut *conn)
        .await
        .unwrap();
    let first = unique("v1")
        .enqueue_outcome_async(&mut *conn)
        .await
        .unwrap();
    let second = unique("v2")
        .enqueue_outcome_async(&mut *conn)
        .await
        .unwrap();
    unique_checked(t, first, second);
}

/// A unique job that replaces a waiting duplicate, with a concurrency key.
fn unique(version: &str) -> dj::Delayed<Record> {
    record(version)
        .delay()
        .unique("through the driver")
        .on_duplicate(dj::OnDuplicate::Replace)
        .concurrency_key("driver", 2)
}

/// The second of two [`unique`] enqueues replaced the first's row, which holds its keys;
/// then the row is removed, so that the cases' counts are left as they were.
fn unique_checked(t: &TestDb, first: dj::EnqueueOutcome, second: dj::EnqueueOutcome) {
    assert!(
        matches!(first, dj::EnqueueOutcome::Inserted(_)),
        "{first:?}"
    );
    assert_eq!(second, dj::EnqueueOutcome::Replaced(first.id()));
    let row = t.db.job(first.id()).unwrap().unwrap();
    assert!(row.handler.contains("v2"), "{}", row.handler);
    assert_eq!(row.concurrency_key.as_deref(), Some("driver"));
    assert_eq!(row.unique_key.as_deref(), Some("Record/through the driver"));
    t.db.delete_jobs(&JobFilter {
        id: Some(first.id()),
        ..JobFilter::default()
    })
    .unwrap();
}

fn tokio_postgres_transaction(backend: Backend) {
    let t = TestDb::new(backend, "tokio_postgres_tx");
    in_both_flavours(|flavour| {
        let t = &t;
        async move {
            t.db.delete_jobs(&JobFilter::default()).unwrap();
            let (mut client, connection) = tokio_postgres::connect(&t.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let driver = tokio::spawn(connection);
            let tx = client.transaction().await.unwrap();
            record("rolled back")
                .delay()
                .enqueue_async(&tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(count(t), 0, "{flavour}");
            let tx = client.transaction().await.unwrap();
            record("committed")
                .delay()
                .enqueue_async(&tx)
                .await
                .unwrap();
            dj::enqueue_many_async(&tx, (0..2).map(|i| record(&format!("{i}"))))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            record("plain")
                .delay()
                .enqueue_async(&client)
                .await
                .unwrap();
            let first = unique("v1").enqueue_outcome_async(&client).await.unwrap();
            let second = unique("v2").enqueue_outcome_async(&client).await.unwrap();
            unique_checked(t, first, second);
            assert_eq!(count(t), 4, "{flavour}");
            drop(client);
            let _ = driver.await;
        }
    });
}

/// Plain jobs, then a unique one whose key PostgreSQL rejects (a NUL byte, which no text
/// value may hold): the plain rows' statement runs first, the unique row's fails.
fn plain_then_rejected() -> impl Iterator<Item = dj::Delayed<Record>> {
    (0..3)
        .map(|i| record(&format!("{i}")).delay())
        .chain([record("rejected").delay().unique("nul\0key")])
}

/// `enqueue_many_async` onto a tokio-postgres client or transaction is all or none, as onto
/// every other target: a call whose later statement fails leaves none of its rows, and
/// leaves the caller's connection (and transaction) usable.
fn tokio_postgres_all_or_none(backend: Backend) {
    let t = TestDb::new(backend, "tokio_postgres_atomic");
    in_both_flavours(|flavour| {
        let t = &t;
        async move {
            t.db.delete_jobs(&JobFilter::default()).unwrap();
            let (mut client, connection) = tokio_postgres::connect(&t.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let driver = tokio::spawn(connection);
            let failed = dj::enqueue_many_async(&client, plain_then_rejected()).await;
            assert!(failed.is_err(), "{flavour}: {failed:?}");
            assert_eq!(count(t), 0, "{flavour}: the client kept part of the call");
            record("after")
                .delay()
                .enqueue_async(&client)
                .await
                .unwrap();
            assert_eq!(count(t), 1, "{flavour}");
            let tx = client.transaction().await.unwrap();
            let failed = dj::enqueue_many_async(&tx, plain_then_rejected()).await;
            assert!(failed.is_err(), "{flavour}: {failed:?}");
            record("in the transaction")
                .delay()
                .enqueue_async(&tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(
                count(t),
                2,
                "{flavour}: the transaction kept part of the call"
            );
            drop(client);
            let _ = driver.await;
        }
    });
}

/// The sync `enqueue` onto the caller's diesel connection, inside its diesel transaction.
fn diesel_transaction(backend: Backend) {
    use diesel::Connection as _;
    let t = TestDb::new(backend, "diesel_transaction");
    match backend {
        Backend::Postgres => {
            let mut conn = diesel::PgConnection::establish(&t.url).unwrap();
            diesel_cases(&t, &mut conn);
        }
        Backend::Sqlite => {
            let mut conn =
                diesel::SqliteConnection::establish(t.sqlite_path().to_str().unwrap()).unwrap();
            diesel_cases(&t, &mut conn);
        }
        Backend::Mysql => {
            let mut conn = diesel::MysqlConnection::establish(&t.url).unwrap();
            diesel_cases(&t, &mut conn);
        }
    }
}

fn diesel_cases<C>(t: &TestDb, conn: &mut C)
where
    C: diesel::Connection,
    for<'a> &'a mut C: dj::EnqueueTarget,
{
    let err = conn
        .transaction::<(), _, _>(|conn| {
            record("rolled back").delay().enqueue(conn).unwrap();
            Err(diesel::result::Error::RollbackTransaction)
        })
        .unwrap_err();
    assert!(matches!(err, diesel::result::Error::RollbackTransaction));
    assert_eq!(count(t), 0, "a rolled-back job is not there");
    conn.transaction::<(), diesel::result::Error, _>(|conn| {
        record("committed")
            .delay()
            .priority(3)
            .enqueue(&mut *conn)
            .unwrap();
        dj::enqueue_many(&mut *conn, (0..2).map(|i| record(&format!("{i}")))).unwrap();
        Ok(())
    })
    .unwrap();
    record("plain").delay().enqueue(&mut *conn).unwrap();
    let first = unique("v1").enqueue_outcome(&mut *conn).unwrap();
    let second = unique("v2").enqueue_outcome(&mut *conn).unwrap();
    unique_checked(t, first, second);
    assert_eq!(count(t), 4);
    let rows = t.db.jobs(&JobFilter::default()).unwrap();
    assert_eq!(rows[0].priority, 3);
    assert_eq!(
        dj::Worker::new(t.db.clone())
            .work_off(10)
            .unwrap()
            .succeeded,
        4
    );
}
