//! The benchmark's own databases: on PostgreSQL (or MySQL/MariaDB, with a `mysql://` URL),
//! created on the server if missing, and a fresh `delayed_jobs` table (dj's migration) before
//! every workload, so no run inherits another's dead rows; on SQLite, a fresh file in a new
//! directory for every run.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use postgres::{Client, NoTls};

use crate::jobs::{AsyncNoop, Noop};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Creates the database `url` names unless it exists, by connecting to the server's
/// `postgres` database.
pub fn create_database(url: &str) -> Result<(), BoxError> {
    if let Some(mysql) = mysql_url(url) {
        return mysql::create_database(&mysql);
    }
    let config = postgres::Config::from_str(url)?;
    let name = config
        .get_dbname()
        .ok_or("the benchmark URL must name a database")?
        .to_owned();
    let mut admin_config = config.clone();
    admin_config.dbname("postgres");
    let mut admin = admin_config.connect(NoTls)?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        admin.batch_execute(&format!("CREATE DATABASE {quoted}"))?;
    }
    Ok(())
}

/// A plain connection for the benchmark's own SQL.
pub fn connect(url: &str) -> Result<Client, BoxError> {
    Ok(postgres::Config::from_str(url)?.connect(NoTls)?)
}

/// Drops dj's tables and migrates again: an empty, unbloated `delayed_jobs`. Then a
/// `CHECKPOINT`, so that the dirty pages a previous workload left are not written during the
/// next one's timing.
pub fn fresh_table(url: &str) -> Result<dj::Db, BoxError> {
    if let Some(mysql) = mysql_url(url) {
        mysql::drop_tables(&mysql)?;
        let db = dj::Db::open(url)?;
        db.migrate()?;
        return Ok(db);
    }
    let mut client = connect(url)?;
    client.batch_execute(
        "DROP TABLE IF EXISTS delayed_jobs, dj_schema_migrations, dj_workers, dj_maintenance, \
         dj_paused_queues, dj_queue_limits, dj_cancels, dj_lanes, dj_workflow_edges, \
         dj_workflow_steps, dj_workflows, dj_held_jobs, dj_workflow_deletes;",
    )?;
    let db = dj::Db::open(url)?;
    db.migrate()?;
    client.batch_execute("CHECKPOINT")?;
    Ok(db)
}

/// Enqueues `n` no-op jobs through `enqueue_many` (in slices, to bound memory), then
/// `VACUUM ANALYZE`s: the state a waiting queue is in once autovacuum has seen it (this
/// server runs with autovacuum off, so the benchmark does it).
pub fn pre_enqueue(url: &str, db: &dj::Db, n: u64) -> Result<(), BoxError> {
    enqueue_noops(db, n)?;
    vacuum(url)
}

/// Enqueues `n` no-op jobs through `enqueue_many`, in slices to bound memory.
pub fn enqueue_noops(db: &dj::Db, n: u64) -> Result<(), BoxError> {
    enqueue_in_slices(db, n, |n| Noop { n })
}

/// The same with [`AsyncNoop`] jobs.
pub fn enqueue_async_noops(db: &dj::Db, n: u64) -> Result<(), BoxError> {
    enqueue_in_slices(db, n, |n| AsyncNoop { n })
}

/// Enqueues `make(0..n)` through `enqueue_many`, 50,000 at a time to bound memory.
pub fn enqueue_in_slices<J: dj::Job>(
    db: &dj::Db,
    n: u64,
    make: impl Fn(u64) -> J,
) -> Result<(), BoxError> {
    const SLICE: u64 = 50_000;
    let mut start = 0;
    while start < n {
        let end = (start + SLICE).min(n);
        dj::enqueue_many(db, (start..end).map(&make))?;
        start = end;
    }
    Ok(())
}

pub fn vacuum(url: &str) -> Result<(), BoxError> {
    if let Some(mysql) = mysql_url(url) {
        return mysql::analyze(&mysql);
    }
    let mut client = connect(url)?;
    // Two statements: VACUUM cannot share the implicit transaction of a multi-statement query.
    client.batch_execute("VACUUM ANALYZE delayed_jobs")?;
    client.batch_execute("CHECKPOINT")?;
    Ok(())
}

/// Rows left in the table.
pub fn count(url: &str) -> Result<i64, BoxError> {
    if let Some(mysql) = mysql_url(url) {
        return mysql::count(&mysql);
    }
    Ok(connect(url)?
        .query_one("SELECT count(*) FROM delayed_jobs", &[])?
        .get(0))
}

/// Server settings that bear on the figures, for the report.
pub fn server_settings(url: &str) -> Result<Vec<(String, String)>, BoxError> {
    if let Some(mysql) = mysql_url(url) {
        return mysql::server_settings(&mysql);
    }
    let mut client = connect(url)?;
    let mut out = vec![(
        "server_version".to_owned(),
        client
            .query_one("SHOW server_version", &[])?
            .get::<_, String>(0),
    )];
    for row in client.query(
        "SELECT name, setting || coalesce(' ' || unit, '') FROM pg_settings \
         WHERE name = ANY($1) ORDER BY name",
        &[&vec![
            "synchronous_commit",
            "fsync",
            "shared_buffers",
            "wal_buffers",
            "max_wal_size",
            "autovacuum",
            "commit_delay",
        ]],
    )? {
        out.push((row.get(0), row.get(1)));
    }
    Ok(out)
}

/// SQLite's `synchronous` setting, as a dj URL states it.
#[derive(Debug, Clone, Copy)]
pub enum Synchronous {
    /// dj's default: in WAL mode a commit is durable across a process crash; on power loss the
    /// last commits may be lost (the WAL is synced at checkpoints, not at every commit).
    Normal,
    /// Every commit syncs the WAL.
    Full,
}

impl Synchronous {
    pub const BOTH: [Synchronous; 2] = [Synchronous::Normal, Synchronous::Full];

    pub fn name(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }

    fn url_query(self) -> &'static str {
        match self {
            Synchronous::Normal => "",
            Synchronous::Full => "?synchronous=full",
        }
    }
}

/// A fresh SQLite database: `bench.db` in a new directory under `parent`, migrated; the
/// directory is removed on drop.
pub struct SqliteFile {
    dir: PathBuf,
    pub db: dj::Db,
}

impl SqliteFile {
    pub fn new(parent: &Path, synchronous: Synchronous) -> Result<SqliteFile, BoxError> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = parent.join(format!(
            "dj-bench-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("bench.db");
        let path = path.to_str().ok_or("the SQLite directory must be UTF-8")?;
        let file = SqliteFile {
            db: dj::Db::open(&format!("sqlite:{path}{}", synchronous.url_query()))?,
            dir,
        };
        file.db.migrate()?;
        Ok(file)
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `mysql://` URL the benchmark's own SQL uses, if `url` names a MySQL server.
pub fn mysql_url(url: &str) -> Option<String> {
    url.strip_prefix("mysql://")
        .or_else(|| url.strip_prefix("mariadb://"))
        .map(|rest| format!("mysql://{rest}"))
}

/// The same steps on MySQL / MariaDB.
mod mysql {
    use mysql::prelude::Queryable;

    use super::BoxError;

    fn connect(url: &str) -> Result<mysql::Conn, BoxError> {
        Ok(mysql::Conn::new(mysql::Opts::from_url(url)?)?)
    }

    pub fn create_database(url: &str) -> Result<(), BoxError> {
        let opts = mysql::Opts::from_url(url)?;
        let name = opts
            .get_db_name()
            .ok_or("the benchmark URL must name a database")?
            .to_owned();
        let server = mysql::OptsBuilder::from_opts(opts).db_name(None::<String>);
        let mut admin = mysql::Conn::new(server)?;
        admin.query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            name.replace('`', "``")
        ))?;
        Ok(())
    }

    /// Drops every table of the benchmark's database (all of them are dj's).
    pub fn drop_tables(url: &str) -> Result<(), BoxError> {
        let mut conn = connect(url)?;
        let tables: Vec<String> = conn.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
        )?;
        conn.query_drop("SET FOREIGN_KEY_CHECKS = 0")?;
        for table in tables {
            conn.query_drop(format!("DROP TABLE `{}`", table.replace('`', "``")))?;
        }
        conn.query_drop("DROP PROCEDURE IF EXISTS dj_enqueue")?;
        Ok(())
    }

    /// Fresh statistics for the claim's plan (InnoDB has no VACUUM).
    pub fn analyze(url: &str) -> Result<(), BoxError> {
        connect(url)?.query_drop("ANALYZE TABLE delayed_jobs")?;
        Ok(())
    }

    pub fn count(url: &str) -> Result<i64, BoxError> {
        let n: Option<i64> = connect(url)?.query_first("SELECT count(*) FROM delayed_jobs")?;
        Ok(n.unwrap_or_default())
    }

    pub fn server_settings(url: &str) -> Result<Vec<(String, String)>, BoxError> {
        let mut conn = connect(url)?;
        let mut out: Vec<(String, String)> = Vec::new();
        let version: Option<String> = conn.query_first("SELECT VERSION()")?;
        out.push(("version".to_owned(), version.unwrap_or_default()));
        let rows: Vec<(String, String)> = conn.query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('innodb_flush_log_at_trx_commit', \
             'sync_binlog', 'log_bin', 'innodb_buffer_pool_size', 'innodb_log_file_size', \
             'transaction_isolation', 'tx_isolation')",
        )?;
        out.extend(rows);
        Ok(out)
    }
}
