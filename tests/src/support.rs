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
    Mysql,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
        }
    }
}

/// The server the MySQL suite uses: `DJ_TEST_MYSQL_URL`, else the local MariaDB.
pub fn mysql_base_url() -> String {
    std::env::var("DJ_TEST_MYSQL_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// Whether the MySQL server answers.
pub fn mysql_available() -> Result<(), String> {
    mysql_admin().map(|_| ())
}

/// A connection to the MySQL server's base database (for creating and dropping the tests'
/// databases).
fn mysql_admin() -> Result<mysql::Conn, String> {
    let opts = mysql::Opts::from_url(&mysql_base_url()).map_err(|e| e.to_string())?;
    let opts =
        mysql::OptsBuilder::from_opts(opts).tcp_connect_timeout(Some(Duration::from_secs(3)));
    mysql::Conn::new(opts).map_err(|e| e.to_string())
}

/// `url` with its database (the path) replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
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
    /// The MySQL database made for this test.
    mysql_database: Option<String>,
    /// The MySQL users made for this test (see [`TestDb::mysql_user_url`]).
    mysql_users: std::sync::Mutex<Vec<String>>,
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
        let mut mysql_database = None;
        let (url, schema) = match backend {
            Backend::Sqlite => (format!("sqlite:{}", dir.join("jobs.db").display()), None),
            Backend::Mysql => {
                let database = format!("dj_{tag}_{}_{n}", std::process::id());
                let mut admin = mysql_admin().expect("connect to the test MySQL");
                mysql_script(
                    &mut admin,
                    &format!(
                        "DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database} \
                         CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                    ),
                )
                .expect("create the test database");
                let url = with_database(&mysql_base_url(), &database);
                mysql_database = Some(database);
                (url, None)
            }
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
            mysql_database,
            mysql_users: Default::default(),
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
            Backend::Mysql => mysql_script(&mut self.mysql_conn(), sql).expect("exec sql"),
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
            Backend::Mysql => {
                use mysql::prelude::Queryable;
                (self.mysql_conn().query_first::<i64, _>(sql))
                    .expect("query")
                    .expect("a row")
            }
        }
    }

    /// A direct MySQL connection to the test database, in UTC as dj's own are.
    /// A URL for this test's MySQL database as user `user`, made now with the rights the
    /// README says a worker needs on it (and nothing else), so that a case can end its
    /// processes' connections by user, as PostgreSQL's cases do by application name; dropped
    /// with the database.
    pub fn mysql_user_url(&self, user: &str) -> String {
        use mysql::prelude::Queryable;
        let database = self
            .mysql_database
            .as_deref()
            .expect("a MySQL test database");
        let mut conn = self.mysql_conn();
        conn.query_drop(format!("CREATE USER IF NOT EXISTS '{user}'@'%'"))
            .expect("create the user");
        conn.query_drop(format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES, EXECUTE \
             ON `{database}`.* TO '{user}'@'%'"
        ))
        .expect("grant it the test database");
        self.mysql_users.lock().unwrap().push(user.to_owned());
        let url = self.url.replacen("://root@", &format!("://{user}@"), 1);
        assert_ne!(url, self.url, "the test URL names user root: {}", self.url);
        url
    }

    /// Ends every connection of MySQL user `user` (see [`TestDb::mysql_user_url`]): how many.
    pub fn mysql_kill_user(&self, user: &str) -> usize {
        use mysql::prelude::Queryable;
        let mut conn = self.mysql_conn();
        let ids: Vec<u64> = conn
            .exec(
                "SELECT id FROM information_schema.processlist WHERE user = ?",
                (user,),
            )
            .expect("list the user's connections");
        // A connection may end by itself between the list and its kill.
        (ids.iter())
            .filter(|id| conn.query_drop(format!("KILL CONNECTION {id}")).is_ok())
            .count()
    }

    pub fn mysql_conn(&self) -> mysql::Conn {
        use mysql::prelude::Queryable;
        let mut conn = mysql::Conn::new(mysql::Opts::from_url(&self.url).expect("a mysql url"))
            .expect("connect");
        conn.query_drop("SET time_zone = '+00:00'")
            .expect("set the time zone");
        // Series made by recursion (`WITH RECURSIVE`) longer than the servers' default 1,000:
        // MariaDB's name, then MySQL's.
        if conn
            .query_drop("SET max_recursive_iterations = 1000000")
            .is_err()
        {
            conn.query_drop("SET cte_max_recursion_depth = 1000000")
                .expect("allow long recursions");
        }
        conn
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
        if let Some(database) = &self.mysql_database {
            use mysql::prelude::Queryable;
            if let Ok(mut admin) = mysql_admin() {
                let _ = admin.query_drop(format!("DROP DATABASE IF EXISTS {database}"));
                for user in self.mysql_users.lock().unwrap().iter() {
                    let _ = admin.query_drop(format!("DROP USER IF EXISTS '{user}'@'%'"));
                }
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

/// Runs a MySQL script of several statements, reading every statement's result, so that an
/// error of any of them is returned (the driver's `query_drop` reads only the first's).
pub fn mysql_script(conn: &mut mysql::Conn, script: &str) -> mysql::Result<()> {
    use mysql::prelude::Queryable;
    let mut result = conn.query_iter(script)?;
    while let Some(set) = result.iter() {
        for row in set {
            row?;
        }
    }
    Ok(())
}
