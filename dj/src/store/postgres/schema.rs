//! The schema: numbered migrations, applied in order under a lock, and the check that every
//! column dj uses is there.

use super::pool::{Session, Sql, Statements};
use super::sql;
use super::PgStore;
use crate::error::Result;
use crate::io;
use tokio_postgres::types::Type;

/// Migrations, numbered, applied in order by `migrate`.
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_create_delayed_jobs.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_worker_liveness.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/postgres/0003_retention.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/postgres/0004_paused_queues.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/postgres/0005_job_control.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/postgres/0006_cron.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/postgres/0007_throughput.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/postgres/0008_keyed_ready.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/postgres/0009_wakeups.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/postgres/0010_sql_enqueue.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/postgres/0011_fast_lane.sql"),
    ),
    (
        12,
        include_str!("../../../migrations/postgres/0012_autovacuum.sql"),
    ),
    (
        13,
        include_str!("../../../migrations/postgres/0013_results.sql"),
    ),
    (
        14,
        include_str!("../../../migrations/postgres/0014_sequences.sql"),
    ),
    (
        15,
        include_str!("../../../migrations/postgres/0015_complete_in.sql"),
    ),
    (
        16,
        include_str!("../../../migrations/postgres/0016_attempts.sql"),
    ),
    (
        17,
        include_str!("../../../migrations/postgres/0017_progress.sql"),
    ),
    (
        18,
        include_str!("../../../migrations/postgres/0018_rate_limits.sql"),
    ),
    (
        19,
        include_str!("../../../migrations/postgres/0019_key_heads.sql"),
    ),
    (
        20,
        include_str!("../../../migrations/postgres/0020_workflows.sql"),
    ),
];

/// The schema SQL, as `schema` prints it.
pub(crate) fn schema_sql() -> String {
    crate::store::schema_of(MIGRATIONS)
}

impl PgStore {
    /// Applies the migrations not yet applied, in one transaction; returns their versions.
    pub(super) fn apply_migrations(&self) -> Result<Vec<u32>> {
        self.run(async |conn: &mut Session| {
            let tx = conn.transaction().await?;
            tx.batch_execute(sql::MIGRATE_QUIET).await?;
            tx.execute(Sql::Built(sql::MIGRATE_LOCK), &[], &[]).await?;
            tx.batch_execute(sql::MIGRATIONS_TABLE).await?;
            let done: Vec<i32> = tx
                .query(Sql::Built(sql::MIGRATIONS_DONE), &[], &[])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut applied = Vec::new();
            for &(version, text) in MIGRATIONS {
                if done.contains(&(version as i32)) {
                    continue;
                }
                tx.batch_execute(text).await?;
                let applied_sql = Sql::Built(sql::MIGRATION_APPLIED);
                tx.execute(applied_sql, &[Type::INT4], &[&(version as i32)])
                    .await?;
                applied.push(version);
            }
            tx.commit().await?;
            conn.clear_statements();
            Ok(applied)
        })
    }

    /// Names every table and column dj uses, reading no rows.
    pub(super) fn check_columns(&self) -> Result<()> {
        let check = sql::check_schema();
        self.run(async |conn: &mut Session| conn.batch_execute(&check).await)
    }
}

/// How long one rebuild of the table's indexes may take, beside the statement deadline (an
/// index of a large backlog takes minutes to build concurrently).
const REINDEX_BOUND: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// `delayed_jobs`' indexes, `$1`: the valid ones (false: those an interrupted concurrent
/// rebuild left invalid).
const TABLE_INDEXES: &str = "SELECT c.relname::text FROM pg_index i \
     JOIN pg_class c ON c.oid = i.indexrelid \
     WHERE i.indrelid = 'delayed_jobs'::regclass AND i.indisvalid = $1 ORDER BY c.relname";

/// An index name from the catalog as an identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PgStore {
    /// Drops the invalid indexes an interrupted rebuild left on `delayed_jobs`, then rebuilds
    /// each valid one with `REINDEX INDEX CONCURRENTLY` (writers and claims go on meanwhile);
    /// returns the indexes rebuilt. On a direct connection the server's statement timeout is
    /// lifted for it; behind a transaction pooler a session setting would outlive the call,
    /// so the server's own applies there.
    pub(super) fn reindex_concurrently(&self) -> Result<Vec<String>> {
        let direct = self.statements == Statements::Prepared;
        io::block_on(async {
            let mut conn = self.pool.get().await?;
            let rebuild = conn.run(async |s: &mut Session| {
                let names =
                    async |valid: bool| -> std::result::Result<Vec<String>, tokio_postgres::Error> {
                        let rows = s
                            .query(Sql::Unnamed(TABLE_INDEXES), &[Type::BOOL], &[&valid])
                            .await?;
                        Ok(rows.iter().map(|r| r.get(0)).collect())
                    };
                for leftover in names(false).await? {
                    if leftover.contains("_ccnew") {
                        s.batch_execute(&format!(
                            "DROP INDEX CONCURRENTLY IF EXISTS {}",
                            quoted(&leftover)
                        ))
                        .await?;
                    }
                }
                let indexes = names(true).await?;
                if direct {
                    s.batch_execute("SET statement_timeout = 0").await?;
                }
                for index in &indexes {
                    s.batch_execute(&format!("REINDEX INDEX CONCURRENTLY {}", quoted(index)))
                        .await?;
                }
                if direct {
                    s.batch_execute("RESET statement_timeout").await?;
                }
                Ok(indexes)
            });
            match tokio::time::timeout(REINDEX_BOUND, rebuild).await {
                Ok(done) => done.map_err(|e| self.error(e)),
                Err(_elapsed) => {
                    conn.discard();
                    Err(self.timeout("a rebuild of the indexes", REINDEX_BOUND))
                }
            }
        })
    }
}
