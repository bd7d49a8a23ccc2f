//! A database of its own for each test (a PostgreSQL schema, or a SQLite file in a temporary
//! directory), so tests run in parallel; and the perform log.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Which backend a conformance case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// The server the PostgreSQL suite uses: `DJ_TEST_DATABASE_URL`, else the local one.
pub fn postgres_base_url() -> String {
    std::env::var("DJ_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether the PostgreSQL server answers.
pub fn postgres_available() -> Result<(), String> {
    let mut config: postgres::Config = postgres_base_url().parse().map_err(|e| format!("{e}"))?;
    config.connect_timeout(Duration::from_secs(3));
    config
        .connect(postgres::NoTls)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Whether the tests run in CI (`CI=true`), where a case that cannot run fails instead of
/// being skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A database (schema or file) that exists for one test and is removed after it.
#[derive(Debug)]
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub db: dj::Db,
    pub dir: PathBuf,
    schema: Option<String>,
}

impl TestDb {
    /// A fresh, migrated database.
    pub fn new(backend: Backend, test: &str) -> TestDb {
        let db = Self::unmigrated(backend, test);
        db.db.migrate().expect("migrate");
        db
    }

    /// A fresh database without the table.
    pub fn unmigrated(backend: Backend, test: &str) -> TestDb {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let dir = std::env::temp_dir().join(format!("dj-test-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let (url, schema) = match backend {
            Backend::Sqlite => (format!("sqlite:{}", dir.join("jobs.db").display()), None),
            Backend::Postgres => {
                let schema = format!("dj_{tag}_{}_{n}", std::process::id());
                let mut client = postgres::Client::connect(&postgres_base_url(), postgres::NoTls)
                    .expect("connect to the test PostgreSQL");
                client
                    .batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
                    ))
                    .expect("create the test schema");
                let base = postgres_base_url();
                let joiner = if base.contains('?') { '&' } else { '?' };
                (
                    format!("{base}{joiner}options=-csearch_path%3D{schema}"),
                    Some(schema),
                )
            }
        };
        let db = dj::Db::open(&url).expect("open the test database");
        TestDb {
            backend,
            url,
            db,
            dir,
            schema,
        }
    }

    /// A path for a perform log in this test's directory.
    pub fn log(&self) -> PerformLog {
        PerformLog::new(self.dir.join(format!(
            "performs-{}.log",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        )))
    }

    /// Runs raw SQL on the test database (to plant rows the API would never write).
    pub fn exec(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(self.sqlite_path()).expect("open sqlite");
                conn.busy_timeout(Duration::from_secs(10))
                    .expect("busy timeout");
                conn.execute_batch(sql).expect("exec sql");
            }
            Backend::Postgres => {
                self.pg_client().batch_execute(sql).expect("exec sql");
            }
        }
    }

    /// A query returning one integer.
    pub fn query_i64(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(self.sqlite_path()).expect("open sqlite");
                conn.query_row(sql, [], |r| r.get(0)).expect("query")
            }
            Backend::Postgres => self.pg_client().query_one(sql, &[]).expect("query").get(0),
        }
    }

    /// A direct PostgreSQL client on the test schema.
    pub fn pg_client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect")
    }

    /// The PostgreSQL schema this test's tables are in.
    pub fn pg_schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The SQLite file.
    pub fn sqlite_path(&self) -> PathBuf {
        PathBuf::from(self.url.strip_prefix("sqlite:").expect("a sqlite url"))
    }

    /// Seconds from the database's now to `t` (negative if in the past).
    pub fn secs_from_now(&self, t: std::time::SystemTime) -> f64 {
        let now = self.db.now().expect("now");
        match t.duration_since(now) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(schema) = &self.schema {
            if let Ok(mut client) = postgres::Client::connect(&postgres_base_url(), postgres::NoTls)
            {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A file that jobs append one line to per event ("perform KEY", "before", ...), safe across
/// threads and processes (each line is one `write` to a file opened for appending).
#[derive(Debug, Clone)]
pub struct PerformLog {
    path: PathBuf,
}

impl PerformLog {
    pub fn new(path: PathBuf) -> Self {
        PerformLog { path }
    }
    pub fn path(&self) -> String {
        self.path.display().to_string()
    }
    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(_) => Vec::new(),
        }
    }
    /// How many lines equal `line`.
    pub fn count(&self, line: &str) -> usize {
        self.lines().iter().filter(|l| *l == line).count()
    }
    /// How many lines start with `prefix`.
    pub fn count_prefix(&self, prefix: &str) -> usize {
        self.lines()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
    /// Waits up to `timeout` for `line` to appear.
    pub fn wait_for(&self, line: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.count(line) > 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// Appends one line to the log at `path`.
pub fn record(path: &str, line: &str) {
    append(Path::new(path), line);
}

fn append(path: &Path, line: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the perform log");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("write the perform log");
}
