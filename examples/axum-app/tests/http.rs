//! The service over real HTTP on a real PostgreSQL: a committed signup's welcome job is
//! performed by a worker, the worker binary or one in this process, and the user is marked
//! welcomed; a refused or rolled-back signup leaves neither a user nor a job.
//!
//! PostgreSQL: DJ_TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test. Each case
//! works in a schema of its own, dropped when the case ends. As in dj's conformance suite,
//! when no PostgreSQL answers the cases are reported as ignored, except under `CI=true`,
//! where they fail.

use std::future::Future;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dj_axum_app::Signup;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::net::TcpListener;

/// How long a request or a worker run may take before the case fails rather than hangs.
const DEADLINE: Duration = Duration::from_secs(60);

/// How long a whole case may take.
const CASE_DEADLINE: Duration = Duration::from_secs(180);

const CASES: &[(&str, fn())] = &[
    (
        "a_signup_is_welcomed_by_the_worker_binary",
        a_signup_is_welcomed_by_the_worker_binary,
    ),
    (
        "signups_are_welcomed_by_a_worker_in_process",
        signups_are_welcomed_by_a_worker_in_process,
    ),
    (
        "a_taken_email_is_refused_and_enqueues_nothing",
        a_taken_email_is_refused_and_enqueues_nothing,
    ),
    (
        "an_invalid_email_is_refused_and_enqueues_nothing",
        an_invalid_email_is_refused_and_enqueues_nothing,
    ),
    (
        "a_rolled_back_signup_takes_its_job_with_it",
        a_rolled_back_signup_takes_its_job_with_it,
    ),
];

fn main() {
    let args = Arguments::from_args();
    let unreachable = postgres_unreachable();
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if let Some(e) = &unreachable {
        eprintln!(
            "note: PostgreSQL at {} is unreachable ({e}); {}",
            base_url(),
            if in_ci {
                "CI=true, so its cases fail"
            } else {
                "its cases are reported as ignored (set DJ_TEST_DATABASE_URL to run them)"
            }
        );
    }
    let trials = CASES
        .iter()
        .map(|&(name, case)| {
            let reason = unreachable.clone();
            let ignored = reason.is_some() && !in_ci;
            Trial::test(name, move || match reason {
                Some(e) => Err(Failed::from(format!("PostgreSQL is unreachable: {e}"))),
                None => {
                    case();
                    Ok(())
                }
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn base_url() -> String {
    std::env::var("DJ_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Why the test PostgreSQL cannot be reached, if it cannot.
fn postgres_unreachable() -> Option<String> {
    block_on(async {
        match tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(&base_url())).await
        {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("no answer within 3 s".to_owned()),
        }
    })
}

/// Runs a case on a runtime of its own, failing it past [`CASE_DEADLINE`].
fn run_case(case: impl Future<Output = ()>) {
    block_on(async {
        if tokio::time::timeout(CASE_DEADLINE, case).await.is_err() {
            panic!("the case ran past {CASE_DEADLINE:?}");
        }
    });
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// A schema of the test database, dropped with this value (even when the test panics).
struct Schema(String);

impl Schema {
    async fn create(test: &str) -> Schema {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let schema = Schema(format!("axum_{test}_{}_{n}", std::process::id()));
        let mut conn = PgConnection::connect(&base_url())
            .await
            .expect("connect to the test PostgreSQL");
        let sql = format!(
            "DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}",
            schema.0
        );
        conn.execute(sql.as_str())
            .await
            .expect("create the test schema");
        schema
    }

    /// The test database's URL with this schema as the search path, for dj and sqlx alike.
    fn url(&self) -> String {
        let base = base_url();
        let joiner = if base.contains('?') { '&' } else { '?' };
        format!("{base}{joiner}options=-csearch_path%3D{}", self.0)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0);
        // This runs on the test's runtime, which cannot block on a future: a thread with a
        // runtime of its own does.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&base_url()).await.ok()?;
                conn.execute(sql.as_str()).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop the test schema {}", self.0);
        }
    }
}

/// The app, served on a port of its own over a schema of its own.
struct TestApp {
    pool: PgPool,
    db: dj::Db,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`
    address: String,
    // Last, so that it is dropped after the pool and the job database.
    schema: Schema,
}

impl TestApp {
    async fn start(test: &str) -> TestApp {
        let schema = Schema::create(test).await;
        let url = schema.url();
        let pool = PgPool::connect(&url).await.expect("connect the app's pool");
        let db = dj::Db::open(&url).expect("open the job database");
        dj_axum_app::prepare_database(&pool, &db)
            .await
            .expect("prepare the database");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
        let address = format!("http://{}", listener.local_addr().expect("its address"));
        let app = dj_axum_app::app(pool.clone(), db.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::builder()
            .timeout(DEADLINE)
            .build()
            .expect("an HTTP client");
        TestApp {
            pool,
            db,
            http,
            address,
            schema,
        }
    }

    /// `POST /signup`: the status and the JSON answer.
    async fn sign_up(&self, email: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/signup", self.address))
            .json(&json!({ "email": email }))
            .send()
            .await
            .expect("POST /signup");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    /// `GET /jobs`.
    async fn jobs(&self) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}/jobs", self.address))
            .send()
            .await
            .expect("GET /jobs");
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.expect("a JSON list")
    }

    async fn users(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .expect("count users")
    }

    async fn welcomed(&self, user_id: i64) -> bool {
        sqlx::query_scalar("SELECT welcomed_at IS NOT NULL FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await
            .expect("the user")
    }

    /// Runs `worker workoff` on this test's database as a process of its own; returns its
    /// output, or fails the test if it fails or outlives [`DEADLINE`].
    async fn work_off_with_the_worker_binary(&self) -> String {
        let url = self.schema.url();
        let log = std::env::temp_dir().join(format!("{}-worker.log", self.schema.0));
        tokio::task::spawn_blocking(move || run_worker(&url, &log))
            .await
            .expect("the worker run")
    }
}

/// The signed-up user's id and job id from a 201 answer.
fn signup_of(answer: &Value) -> Signup {
    Signup {
        id: answer["id"].as_i64().expect("an id"),
        job: answer["job"].as_i64().expect("a job id"),
    }
}

fn run_worker(url: &str, log: &Path) -> String {
    let out = std::fs::File::create(log).expect("create the worker log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_axum-worker"))
        .arg("workoff")
        .env("DATABASE_URL", url)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("the log, twice"))
        .stderr(out)
        .spawn()
        .expect("start the worker binary");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the worker") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the worker ran past {DEADLINE:?}: {}", read_log(log));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = read_log(log);
    let _ = std::fs::remove_file(log);
    assert!(status.success(), "the worker failed ({status}): {output}");
    output
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

fn a_signup_is_welcomed_by_the_worker_binary() {
    run_case(async {
        let t = TestApp::start("binary").await;
        let (status, answer) = t.sign_up("ada@example.com").await;
        assert_eq!(status, 201, "{answer}");
        let signup = signup_of(&answer);

        let jobs = t.jobs().await;
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0]["id"], signup.job);
        assert_eq!(jobs[0]["name"], "send_welcome");
        assert_eq!(jobs[0]["queue"], "mail");
        assert_eq!(jobs[0]["state"], "ready");
        assert_eq!(jobs[0]["attempts"], 0);
        assert!(
            !t.welcomed(signup.id).await,
            "welcomed before any worker ran"
        );

        let output = t.work_off_with_the_worker_binary().await;
        assert!(
            t.welcomed(signup.id).await,
            "not welcomed; the worker said: {output}"
        );
        assert_eq!(
            t.jobs().await,
            Vec::<Value>::new(),
            "the job was not deleted"
        );
    });
}

fn signups_are_welcomed_by_a_worker_in_process() {
    run_case(async {
        let t = TestApp::start("inprocess").await;
        let mut users = Vec::new();
        for email in ["grace@example.com", "edsger@example.com"] {
            let (status, answer) = t.sign_up(email).await;
            assert_eq!(status, 201, "{answer}");
            users.push(signup_of(&answer).id);
        }

        // The binary's state function, here too: its pool connects to the `Db`'s URL.
        let worker = dj::Worker::new(t.db.clone()).state_with(dj_axum_app::worker_state);
        let report = tokio::task::spawn_blocking(move || worker.work_off(10))
            .await
            .expect("the worker thread")
            .expect("work off");
        assert_eq!((report.succeeded, report.failed), (2, 0));
        for id in users {
            assert!(t.welcomed(id).await, "user {id} was not welcomed");
        }
        assert_eq!(t.jobs().await, Vec::<Value>::new());
    });
}

fn a_taken_email_is_refused_and_enqueues_nothing() {
    run_case(async {
        let t = TestApp::start("taken").await;
        let (status, answer) = t.sign_up("ada@example.com").await;
        assert_eq!(status, 201, "{answer}");
        let first = signup_of(&answer);

        let (status, answer) = t.sign_up("ada@example.com").await;
        assert_eq!(status, 409, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("already"),
            "{answer}"
        );

        assert_eq!(t.users().await, 1);
        let jobs = t.jobs().await;
        assert_eq!(jobs.len(), 1, "only the first signup's job: {jobs:?}");
        assert_eq!(jobs[0]["id"], first.job);
    });
}

fn an_invalid_email_is_refused_and_enqueues_nothing() {
    run_case(async {
        let t = TestApp::start("invalid").await;
        let (status, answer) = t.sign_up("not an email").await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains('@'), "{answer}");
        assert_eq!(t.users().await, 0);
        assert_eq!(t.jobs().await, Vec::<Value>::new());
    });
}

/// The rule the handler relies on: the user and the job are one transaction's writes, so a
/// rollback after both were written takes both back.
fn a_rolled_back_signup_takes_its_job_with_it() {
    run_case(async {
        let t = TestApp::start("rollback").await;
        let mut tx = t.pool.begin().await.expect("begin");
        let signup = dj_axum_app::sign_up(&mut tx, "ada@example.com")
            .await
            .expect("sign up");
        let in_tx: i64 = sqlx::query_scalar("SELECT count(*) FROM delayed_jobs WHERE id = $1")
            .bind(signup.job)
            .fetch_one(&mut *tx)
            .await
            .expect("count jobs");
        assert_eq!(in_tx, 1, "the job is written inside the transaction");
        tx.rollback().await.expect("roll back");

        let db = t.db.clone();
        let job = tokio::task::spawn_blocking(move || db.job(signup.job))
            .await
            .expect("the lookup thread")
            .expect("look the job up");
        assert!(job.is_none(), "the job outlived its rollback: {job:?}");
        assert_eq!(t.users().await, 0);
    });
}
