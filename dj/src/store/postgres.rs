//! The PostgreSQL backend: the deployment target. Claims use `FOR UPDATE SKIP LOCKED` in a
//! CTE (never `IN (...)`), outcomes are written for many jobs per statement, inserts are one
//! statement per batch, and an `AFTER INSERT ... FOR EACH STATEMENT` trigger NOTIFYs idle
//! workers.

use std::future::Future;
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::postgres_pool::{PgPool, Session, Sql, Statements};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{AsyncMessage, Client, NoTls, Row};

use super::filter::{failed, ready, running, scheduled};
use super::pool::PoolLimits;
use super::{
    filter, Cancel, ClaimParams, CronFire, Fail, JobFilter, JobRow, QueueStats, Retry, Store,
    Wakeups, WorkerInfo, WorkerRow, VERSION,
};
use crate::error::{Error, Result};
use crate::io;
use crate::model::{EnqueueOutcome, JobId, NewJob};
use crate::model::{Missed, ScheduleDef, ScheduleRow};
use crate::stop::StopFlag;

/// Migrations, numbered, applied in order by `migrate`.
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_create_delayed_jobs.sql"),
    ),
    (
        2,
        include_str!("../../migrations/postgres/0002_worker_liveness.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_retention.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_paused_queues.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_job_control.sql"),
    ),
    (6, include_str!("../../migrations/postgres/0006_cron.sql")),
    (
        7,
        include_str!("../../migrations/postgres/0007_throughput.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_keyed_ready.sql"),
    ),
    (
        9,
        include_str!("../../migrations/postgres/0009_wakeups.sql"),
    ),
];

const COLUMNS: &str = "id, priority, attempts, handler, last_error, run_at, locked_at, failed_at, \
                       locked_by, queue, created_at, updated_at, name, max_run_time, started_at, crashes, \
                       snoozes, unique_key, concurrency_key";

const CHANNEL: &str = "delayed_jobs";

/// How long dj waits for the server. Set in the URL (`?connect_timeout=5&statement_timeout=30s`,
/// beside the pool's `pool_size` and `pool_timeout`); dj takes its own keys out before the
/// driver reads the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    /// Connecting, TLS and the login handshake together (the driver's own `connect_timeout`
    /// bounds only the socket).
    pub(crate) connect: Duration,
    /// One operation of dj's: a statement, or the statements of one transaction.
    pub(crate) statement: Duration,
    /// Connections one `Db` keeps open (a worker's LISTEN connection is apart).
    pub(crate) pool: PoolLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(5),
            statement: Duration::from_secs(30),
            pool: PoolLimits::default(),
        }
    }
}

/// How dj goes through a connection pooler such as PgBouncer: the URL's `pooler` (or
/// `pgbouncer`) and `listen_url` keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Pooling {
    /// `pooler=transaction` (`pgbouncer=true`): every statement unnamed. `session` and `none`
    /// keep the direct connection's prepared statements.
    pub(crate) statements: Statements,
    /// Where a worker LISTENs for wake-ups (percent-decoded), instead of the URL itself.
    pub(crate) listen_url: Option<String>,
}

impl Pooling {
    /// Reads `key=value` if it is one of the pooling keys, as [`PoolLimits::take`].
    fn take(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
        let statements = match (key, value) {
            ("pooler", "transaction") | ("pgbouncer", "true") => Statements::Unnamed,
            ("pooler", "session" | "none") | ("pgbouncer", "false") => Statements::Prepared,
            ("pooler", "statement") => {
                return Some(Err(
                    "`pooler=statement` cannot work: statement pooling forbids \
                     transactions, which dj's claims and migrations need; set \
                     PgBouncer's `pool_mode = transaction` and write `pooler=transaction`"
                        .to_owned(),
                ))
            }
            ("pooler", _) => {
                return Some(Err(format!(
                    "`pooler` must be `transaction`, `session` or `none`, not `{value}`"
                )))
            }
            ("pgbouncer", _) => {
                return Some(Err(format!(
                    "`pgbouncer` must be `true` (PgBouncer in transaction pooling; the same as \
                     `pooler=transaction`) or `false`, not `{value}`"
                )))
            }
            ("listen_url", _) => {
                return Some(
                    percent_decode(value)
                        .map(|url| self.listen_url = Some(url))
                        .map_err(|e| format!("`listen_url`: {e}")),
                )
            }
            _ => return None,
        };
        self.statements = statements;
        Some(Ok(()))
    }
}

/// Splits dj's own keys (`statement_timeout`, `pool_size`, `pool_timeout`, `pooler`,
/// `listen_url`) out of a URL's query and returns the URL the driver reads, with the limits
/// and pooling found.
pub(crate) fn split_url(url: &str) -> Result<(String, Limits, Pooling), String> {
    let mut limits = Limits::default();
    let mut pooling = Pooling::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), limits, pooling));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if let Some(taken) = limits.pool.take(key, value) {
            taken?;
        } else if let Some(taken) = pooling.take(key, value) {
            taken?;
        } else if key == "statement_timeout" {
            limits.statement = crate::duration::parse_duration(value)
                .map_err(|e| format!("`statement_timeout`: {e}"))?;
        } else {
            kept.push(pair);
        }
    }
    if kept.is_empty() {
        Ok((base.to_owned(), limits, pooling))
    } else {
        Ok((format!("{base}?{}", kept.join("&")), limits, pooling))
    }
}

/// A URL query value with its `%XX` escapes decoded (`+` stays: it is a valid URL character).
fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("`%` must start an escape such as `%3A`, in `{value}`"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{value}` decodes to invalid UTF-8"))
}

pub(crate) struct PgStore {
    pool: PgPool,
    limits: Limits,
    shown: String,
    /// Unnamed behind a transaction pooler: then LISTEN goes to `listen_at` or nowhere.
    statements: Statements,
    /// `listen_url`: where the worker LISTENs, if not on the pool's URL.
    listen_at: Option<ListenAt>,
    listener: Mutex<Option<Listener>>,
    limited: super::LimitedProbe,
}

/// A direct server for LISTEN, and how dj shows it.
struct ListenAt {
    config: tokio_postgres::Config,
    shown: String,
}

/// The worker's LISTEN connection: the client, and the wake-ups its connection task hears.
struct Listener {
    _client: Client,
    wakeups: mpsc::Receiver<()>,
}

impl PgStore {
    pub(crate) fn open(url: &str, options: &super::Options) -> Result<PgStore> {
        let bad_url = |reason: String| Error::BadUrl {
            url: shown_url(url),
            reason,
        };
        let (driver_url, mut limits, pooling) = split_url(url).map_err(bad_url)?;
        let mut config =
            tokio_postgres::Config::from_str(&driver_url).map_err(|e| bad_url(e.to_string()))?;
        if let Some(&connect) = config.get_connect_timeout() {
            limits.connect = connect;
        }
        limits.pool.apply(options);
        limits.connect = options.connect_timeout.unwrap_or(limits.connect);
        limits.statement = options.statement_timeout.unwrap_or(limits.statement);
        config.connect_timeout(limits.connect);
        if let Some(name) = &options.application_name {
            config.application_name(name);
        }
        let listen_at = match options.listen_url.as_ref().or(pooling.listen_url.as_ref()) {
            Some(listen_url) => {
                let mut listen = tokio_postgres::Config::from_str(listen_url)
                    .map_err(|e| bad_url(format!("`listen_url`: {e}")))?;
                listen.connect_timeout(limits.connect);
                if let Some(name) = &options.application_name {
                    listen.application_name(name);
                }
                Some(ListenAt {
                    config: listen,
                    shown: hide_password(listen_url),
                })
            }
            None => None,
        };
        let pool = PgPool::new(
            config,
            pooling.statements,
            limits.connect,
            limits.pool.size,
            limits.pool.timeout,
            shown_url(url),
        );
        Ok(PgStore {
            pool,
            limits,
            shown: shown_url(url),
            statements: pooling.statements,
            listen_at,
            listener: Mutex::new(None),
            limited: Default::default(),
        })
    }

    /// Runs one operation on a pooled connection within the statement deadline. A connection
    /// whose operation ran out of time is in an unknown state: it is closed, not pooled, and
    /// the server is asked to cancel what it was running.
    async fn run_async<T>(
        &self,
        operation: impl AsyncFnOnce(&mut Session) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T> {
        let mut conn = self.pool.get().await?;
        let result = tokio::time::timeout(self.limits.statement, conn.run(operation)).await;
        match result {
            Ok(done) => done.map_err(|e| self.error(e)),
            Err(_elapsed) => {
                let cancel = conn.cancel_token();
                conn.discard();
                let bound = self.limits.connect;
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(bound, cancel.cancel_query(NoTls)).await;
                });
                Err(self.timeout("a statement", self.limits.statement))
            }
        }
    }

    /// The sync form of [`PgStore::run_async`]: blocks this thread (see [`crate::io`]).
    fn run<T>(
        &self,
        operation: impl AsyncFnOnce(&mut Session) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T> {
        io::block_on(self.run_async(operation))
    }

    fn error(&self, e: tokio_postgres::Error) -> Error {
        missing_table(e, &self.shown)
    }

    fn timeout(&self, what: &'static str, after: Duration) -> Error {
        Error::Timeout {
            database: self.shown.clone(),
            what,
            after,
        }
    }

    /// Inserts rows on a pooled connection: one statement per batch, several statements in
    /// one transaction. What `enqueue_async` on a PostgreSQL `Db` awaits.
    pub(crate) fn insert<'a>(
        &'a self,
        rows: &'a [NewJob],
    ) -> impl Future<Output = Result<Vec<EnqueueOutcome>>> + Send + 'a {
        self.run_async(async move |conn: &mut Session| {
            let steps = insert_steps(rows, crate::INSERT_BATCH);
            let mut out = vec![EnqueueOutcome::Inserted(0); rows.len()];
            if steps.len() <= 1 {
                for step in &steps {
                    let got = query(conn, step.sql(), step.types(), &step.params()).await?;
                    place(&mut out, step, outcomes_of(got));
                }
                return Ok(out);
            }
            let tx = conn.transaction().await?;
            for step in &steps {
                let sql = Sql::Unnamed(step.sql());
                let got = tx.query(sql, step.types(), &step.params()).await?;
                place(&mut out, step, outcomes_of(got));
            }
            tx.commit().await?;
            Ok(out)
        })
    }
}

/// The limited claim, in a transaction of its own behind the cluster-wide lock.
async fn claim_limited(
    conn: &mut Session,
    p: &ClaimParams<'_>,
    min: i32,
    max: i32,
) -> Result<Vec<JobRow>, tokio_postgres::Error> {
    let limit = p.limit as i64;
    // Candidates read beyond the claim size, so that jobs of keys at their limit do not
    // hide the startable ones behind them.
    let window = (limit * 4).max(100);
    let types = [
        Type::TEXT,
        Type::INT4,
        Type::INT4,
        Type::INT8,
        Type::INT8,
        Type::TEXT_ARRAY,
    ];
    let (sql, types) = if p.queues.is_empty() {
        (CLAIM_LIMITED, &types[..5])
    } else {
        (CLAIM_LIMITED_QUEUES, &types[..])
    };
    let tx = conn.transaction().await?;
    tx.batch_execute(LIMITED_CLAIM_LOCK).await?;
    let sql = Sql::Fixed(sql);
    let rows = if p.queues.is_empty() {
        tx.query(sql, types, &[&p.worker, &min, &max, &limit, &window])
            .await?
    } else {
        tx.query(
            sql,
            types,
            &[&p.worker, &min, &max, &limit, &window, &p.queues],
        )
        .await?
    };
    tx.commit().await?;
    Ok(rows.iter().map(job_row).collect())
}

/// Runs one of dj's fixed statements on a pooled connection: prepared once per connection,
/// or unnamed behind a transaction pooler.
async fn query(
    conn: &Session,
    sql: &'static str,
    types: &[Type],
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    conn.query(Sql::Fixed(sql), types, params).await
}

/// [`query`] for a statement that returns no rows: how many rows it changed.
async fn execute(
    conn: &Session,
    sql: &'static str,
    types: &[Type],
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    conn.execute(Sql::Fixed(sql), types, params).await
}

fn missing_table(e: tokio_postgres::Error, database: &str) -> Error {
    match e.code() {
        Some(code) if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN => {
            Error::MissingTable {
                database: database.to_owned(),
            }
        }
        _ => Error::Postgres(e),
    }
}

fn hide_password(url: &str) -> String {
    // postgres://user:secret@host/db -> postgres://user:***@host/db
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    // The user part ends at the host's `@`, before any path or query (which may hold another
    // URL: `listen_url`).
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// The URL as dj shows it: its password hidden, and `listen_url`'s, decoded.
fn shown_url(url: &str) -> String {
    let hidden = hide_password(url);
    let Some((base, query)) = hidden.split_once('?') else {
        return hidden;
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("listen_url", value)) => match percent_decode(value) {
                Ok(listen) => format!("listen_url={}", hide_password(&listen)),
                Err(_) => pair.to_owned(),
            },
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

fn job_row(row: &Row) -> JobRow {
    JobRow {
        id: row.get(0),
        priority: row.get(1),
        attempts: row.get(2),
        handler: row.get(3),
        last_error: row.get(4),
        run_at: row.get(5),
        locked_at: row.get(6),
        failed_at: row.get(7),
        locked_by: row.get(8),
        queue: row.get(9),
        created_at: row.get(10),
        updated_at: row.get(11),
        name: row.get(12),
        max_run_time: row.get(13),
        started_at: row.get(14),
        crashes: row.get(15),
        snoozes: row.get(16),
        unique_key: row.get(17),
        concurrency_key: row.get(18),
    }
}

/// Columns of a batch insert, one array per column.
struct InsertArrays<'a> {
    names: Vec<&'a str>,
    handlers: Vec<&'a str>,
    priorities: Vec<i32>,
    queues: Vec<Option<&'a str>>,
    /// Absolute run times as unix seconds (one text for every driver: no time crate needed).
    at: Vec<Option<f64>>,
    delays: Vec<f64>,
    max_run_times: Vec<Option<i32>>,
    concurrency_keys: Vec<Option<&'a str>>,
    concurrency_limits: Vec<Option<i32>>,
    unique_keys: Vec<&'a str>,
    unique_until_done: Vec<bool>,
}

/// One statement of an insert: plain rows, or unique rows of one policy with each key at
/// most once (a statement's ON CONFLICT cannot meet one row twice), and where its rows go in
/// the caller's list.
struct InsertStep<'a> {
    a: InsertArrays<'a>,
    /// `None` for plain rows; for unique rows, whether a duplicate replaces the waiting job.
    replace: Option<bool>,
    positions: Vec<usize>,
}

/// The statements that insert `rows`: plain rows in batches of `batch`; unique rows grouped
/// by policy, a later row with a key already in the call going to a later statement (so it
/// meets the earlier one as a duplicate, as a later call would).
fn insert_steps(rows: &[NewJob], batch: usize) -> Vec<InsertStep<'_>> {
    // (replace, round) → positions; plain rows are (None, 0), first.
    type Group = (Option<bool>, usize);
    let mut groups: Vec<(Group, Vec<usize>)> = vec![((None, 0), Vec::new())];
    let mut rounds: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let group = match &row.unique {
            None => (None, 0),
            Some(unique) => {
                let round = rounds.entry(unique.key.as_str()).or_insert(0);
                *round += 1;
                (Some(unique.replace), *round)
            }
        };
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, positions)) => positions.push(i),
            None => groups.push((group, vec![i])),
        }
    }
    let mut steps = Vec::new();
    for ((replace, _), positions) in groups {
        for chunk in positions.chunks(batch) {
            steps.push(InsertStep {
                a: InsertArrays::of(chunk.iter().map(|&i| &rows[i])),
                replace,
                positions: chunk.to_vec(),
            });
        }
    }
    steps
}

impl<'a> InsertArrays<'a> {
    fn of(rows: impl ExactSizeIterator<Item = &'a NewJob>) -> Self {
        let n = rows.len();
        let mut a = InsertArrays {
            names: Vec::with_capacity(n),
            handlers: Vec::with_capacity(n),
            priorities: Vec::with_capacity(n),
            queues: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            delays: Vec::with_capacity(n),
            max_run_times: Vec::with_capacity(n),
            concurrency_keys: Vec::with_capacity(n),
            concurrency_limits: Vec::with_capacity(n),
            unique_keys: Vec::new(),
            unique_until_done: Vec::new(),
        };
        for row in rows {
            let (at, delay) = row.run_at.values();
            a.names.push(row.name);
            a.handlers.push(&row.handler);
            a.priorities.push(row.priority);
            a.queues.push(row.queue.as_deref());
            a.at.push(at);
            a.delays.push(delay);
            a.max_run_times.push(row.max_run_time);
            a.concurrency_keys
                .push(row.concurrency.as_ref().map(|(key, _)| key.as_str()));
            a.concurrency_limits
                .push(row.concurrency.as_ref().map(|(_, limit)| *limit));
            if let Some(unique) = &row.unique {
                a.unique_keys.push(&unique.key);
                a.unique_until_done.push(unique.until_done);
            }
        }
        a
    }
}

/// Runs `steps` through `exec` (one statement each, in order) and puts each row's outcome in
/// its place.
fn collect_outcomes<E>(
    n: usize,
    steps: &[InsertStep<'_>],
    mut exec: impl FnMut(&InsertStep<'_>) -> Result<Vec<(JobId, i32)>, E>,
) -> Result<Vec<EnqueueOutcome>, E> {
    let mut out = vec![EnqueueOutcome::Inserted(0); n];
    for step in steps {
        place(&mut out, step, exec(step)?);
    }
    Ok(out)
}

const INSERT_ONE: &str = "INSERT INTO delayed_jobs \
         (name, handler, priority, queue, run_at, max_run_time, concurrency_key, concurrency_limit) \
     VALUES ($1, $2, $3, $4, coalesce(to_timestamp($5), now() + $6 * interval '1 second'), $7, $8, $9) \
     RETURNING id, 0 AS outcome";
const INSERT_ONE_TYPES: &[Type] = &[
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::INT4,
    Type::TEXT,
    Type::INT4,
];

const INSERT_MANY: &str = "INSERT INTO delayed_jobs \
         (name, handler, priority, queue, run_at, max_run_time, concurrency_key, concurrency_limit) \
     SELECT n, h, p, q, coalesce(to_timestamp(a), now() + d * interval '1 second'), m, ck, cl \
     FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::float8[], $6::float8[], \
                 $7::int4[], $8::text[], $9::int4[]) \
          AS t(n, h, p, q, a, d, m, ck, cl) \
     RETURNING id, 0 AS outcome";
/// The first nine of [`INSERT_UNIQUE_TYPES`]: the same arrays, without the unique columns.
const INSERT_MANY_TYPES: &[Type] = INSERT_UNIQUE_TYPES.split_at(9).0;

/// The insert of unique rows: a row whose key a live row holds (the partial unique index
/// `delayed_jobs_unique`) is not inserted; the holder is returned instead, and with `$12`
/// (replace) a holder still waiting takes the new row's payload, priority, queue, run time
/// and limits. The index decides under concurrency: a second insert of a key waits for the
/// first's transaction and then sees its row. `xmax = 0` only on a row this statement
/// inserted (an upsert's update leaves its lock in xmax).
const INSERT_UNIQUE: &str = "INSERT INTO delayed_jobs AS j \
         (name, handler, priority, queue, run_at, max_run_time, concurrency_key, concurrency_limit, \
          unique_key, unique_running) \
     SELECT n, h, p, q, coalesce(to_timestamp(a), now() + d * interval '1 second'), m, ck, cl, u, ur \
     FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::float8[], $6::float8[], \
                 $7::int4[], $8::text[], $9::int4[], $10::text[], $11::bool[]) \
          AS t(n, h, p, q, a, d, m, ck, cl, u, ur) \
     ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO UPDATE SET \
         handler = CASE WHEN $12 AND j.locked_at IS NULL THEN EXCLUDED.handler ELSE j.handler END, \
         priority = CASE WHEN $12 AND j.locked_at IS NULL THEN EXCLUDED.priority ELSE j.priority END, \
         queue = CASE WHEN $12 AND j.locked_at IS NULL THEN EXCLUDED.queue ELSE j.queue END, \
         run_at = CASE WHEN $12 AND j.locked_at IS NULL THEN EXCLUDED.run_at ELSE j.run_at END, \
         max_run_time = CASE WHEN $12 AND j.locked_at IS NULL THEN EXCLUDED.max_run_time ELSE j.max_run_time END, \
         concurrency_key = CASE WHEN $12 AND j.locked_at IS NULL THEN EXCLUDED.concurrency_key ELSE j.concurrency_key END, \
         concurrency_limit = CASE WHEN $12 AND j.locked_at IS NULL THEN EXCLUDED.concurrency_limit ELSE j.concurrency_limit END, \
         updated_at = CASE WHEN $12 AND j.locked_at IS NULL THEN now() ELSE j.updated_at END \
     RETURNING j.id, CASE WHEN j.xmax = 0 THEN 0 WHEN $12 AND j.locked_at IS NULL THEN 2 ELSE 1 END AS outcome";
const INSERT_UNIQUE_TYPES: &[Type] = &[
    Type::TEXT_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::FLOAT8_ARRAY,
    Type::FLOAT8_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::BOOL_ARRAY,
    Type::BOOL,
];

impl InsertStep<'_> {
    /// One plain row binds scalars; more, or unique rows, bind one array per column.
    fn sql(&self) -> &'static str {
        match self.replace {
            Some(_) => INSERT_UNIQUE,
            None if self.positions.len() == 1 => INSERT_ONE,
            None => INSERT_MANY,
        }
    }
    fn types(&self) -> &'static [Type] {
        match self.replace {
            Some(_) => INSERT_UNIQUE_TYPES,
            None if self.positions.len() == 1 => INSERT_ONE_TYPES,
            None => INSERT_MANY_TYPES,
        }
    }
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let a = &self.a;
        if self.sql() == INSERT_ONE {
            return vec![
                &a.names[0],
                &a.handlers[0],
                &a.priorities[0],
                &a.queues[0],
                &a.at[0],
                &a.delays[0],
                &a.max_run_times[0],
                &a.concurrency_keys[0],
                &a.concurrency_limits[0],
            ];
        }
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &a.names,
            &a.handlers,
            &a.priorities,
            &a.queues,
            &a.at,
            &a.delays,
            &a.max_run_times,
            &a.concurrency_keys,
            &a.concurrency_limits,
        ];
        if let Some(replace) = &self.replace {
            params.extend([
                &a.unique_keys as &(dyn ToSql + Sync),
                &a.unique_until_done,
                replace,
            ]);
        }
        params
    }
    /// The parameters with their types, for a client that runs the insert unprepared.
    fn typed_params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.params()
            .into_iter()
            .zip(self.types().iter().cloned())
            .collect()
    }
}

fn outcomes_of(rows: Vec<Row>) -> Vec<(JobId, i32)> {
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Inserts rows through the caller's own `postgres` client (a transaction, or a plain
/// connection), unprepared: one round trip per statement, nothing left prepared on it.
/// Several statements run in a savepoint (or a transaction), all or none.
pub(crate) fn insert_jobs(
    client: &mut impl postgres::GenericClient,
    rows: &[NewJob],
) -> Result<Vec<EnqueueOutcome>> {
    let error = |e| missing_table(e, "the caller's connection");
    let steps = insert_steps(rows, crate::INSERT_BATCH);
    if steps.len() <= 1 {
        return collect_outcomes(rows.len(), &steps, |s| {
            client
                .query_typed(s.sql(), &s.typed_params())
                .map(outcomes_of)
        })
        .map_err(error);
    }
    let mut tx = client.transaction().map_err(error)?;
    let outcomes = collect_outcomes(rows.len(), &steps, |s| {
        tx.query_typed(s.sql(), &s.typed_params()).map(outcomes_of)
    })
    .map_err(error)?;
    tx.commit().map_err(error)?;
    Ok(outcomes)
}

/// Inserts rows through the caller's `tokio_postgres` client or transaction: one statement
/// for all plain rows (atomic on its own, so a plain client needs no transaction). Unique
/// rows add statements; for those, pass a transaction if the call must be all or none.
#[cfg(feature = "tokio-postgres")]
pub(crate) async fn insert_tokio_postgres(
    client: &impl tokio_postgres::GenericClient,
    rows: &[NewJob],
) -> Result<Vec<EnqueueOutcome>> {
    let mut out = vec![EnqueueOutcome::Inserted(0); rows.len()];
    for step in insert_steps(rows, usize::MAX) {
        let got = client
            .query_typed(step.sql(), &step.typed_params())
            .await
            .map_err(|e| missing_table(e, "the caller's connection"))?;
        place(&mut out, &step, outcomes_of(got));
    }
    Ok(out)
}

fn place(out: &mut [EnqueueOutcome], step: &InsertStep<'_>, got: Vec<(JobId, i32)>) {
    for (&at, (id, code)) in step.positions.iter().zip(got) {
        out[at] = EnqueueOutcome::from_code(id, code);
    }
}

/// Inserts rows through the caller's sqlx connection (or the connection of its transaction):
/// the same statement text as every other driver, arrays even for one row (one bind list
/// for this driver).
#[cfg(feature = "sqlx-postgres")]
pub(crate) async fn insert_sqlx(
    conn: &mut sqlx::PgConnection,
    rows: &[NewJob],
) -> Result<Vec<EnqueueOutcome>> {
    use sqlx::Connection as _;
    async fn each(
        conn: &mut sqlx::PgConnection,
        rows: &[NewJob],
        steps: &[InsertStep<'_>],
    ) -> sqlx::Result<Vec<EnqueueOutcome>> {
        let mut out = vec![EnqueueOutcome::Inserted(0); rows.len()];
        for step in steps {
            let a = &step.a;
            let sql = step.replace.map_or(INSERT_MANY, |_| INSERT_UNIQUE);
            let query = sqlx::query_as::<_, (i64, i32)>(sql)
                .bind(&a.names)
                .bind(&a.handlers)
                .bind(&a.priorities)
                .bind(&a.queues)
                .bind(&a.at)
                .bind(&a.delays)
                .bind(&a.max_run_times)
                .bind(&a.concurrency_keys)
                .bind(&a.concurrency_limits);
            let query = match step.replace {
                Some(replace) => query
                    .bind(&a.unique_keys)
                    .bind(&a.unique_until_done)
                    .bind(replace),
                None => query,
            };
            let got = query.fetch_all(&mut *conn).await?;
            place(&mut out, step, got);
        }
        Ok(out)
    }
    let steps = insert_steps(rows, usize::MAX);
    let inserted = if steps.len() > 1 {
        let mut tx = conn.begin().await.map_err(crate::error::from_sqlx)?;
        match each(&mut tx, rows, &steps).await {
            Ok(out) => tx.commit().await.map(|()| out),
            Err(e) => Err(e),
        }
    } else {
        each(conn, rows, &steps).await
    };
    inserted.map_err(crate::error::from_sqlx)
}

/// Inserts rows through the caller's diesel connection, inside whatever diesel transaction
/// the caller has open (several statements run in a transaction or savepoint of their own).
#[cfg(feature = "diesel-postgres")]
pub(crate) fn insert_diesel(
    conn: &mut diesel::PgConnection,
    rows: &[NewJob],
) -> Result<Vec<EnqueueOutcome>> {
    use super::InsertedId as Inserted;
    use diesel::pg::sql_types::Array;
    use diesel::sql_types::{Bool, Double, Integer, Nullable, Text};
    use diesel::{Connection as _, RunQueryDsl as _};
    let steps = insert_steps(rows, usize::MAX);
    let run = |conn: &mut diesel::PgConnection| {
        collect_outcomes(rows.len(), &steps, |step| {
            let a = &step.a;
            let query = diesel::sql_query(step.replace.map_or(INSERT_MANY, |_| INSERT_UNIQUE))
                .bind::<Array<Text>, _>(&a.names)
                .bind::<Array<Text>, _>(&a.handlers)
                .bind::<Array<Integer>, _>(&a.priorities)
                .bind::<Array<Nullable<Text>>, _>(&a.queues)
                .bind::<Array<Nullable<Double>>, _>(&a.at)
                .bind::<Array<Double>, _>(&a.delays)
                .bind::<Array<Nullable<Integer>>, _>(&a.max_run_times)
                .bind::<Array<Nullable<Text>>, _>(&a.concurrency_keys)
                .bind::<Array<Nullable<Integer>>, _>(&a.concurrency_limits);
            let got = match step.replace {
                Some(replace) => query
                    .bind::<Array<Text>, _>(&a.unique_keys)
                    .bind::<Array<Bool>, _>(&a.unique_until_done)
                    .bind::<Bool, _>(replace)
                    .load::<Inserted>(conn),
                None => query.load::<Inserted>(conn),
            };
            got.map(|rows| rows.into_iter().map(|r| (r.id, r.outcome)).collect())
        })
    };
    let inserted = if steps.len() > 1 {
        conn.transaction(run)
    } else {
        run(conn)
    };
    inserted.map_err(crate::error::from_diesel)
}

/// The queues no plain claim takes from: paused ones, and limited ones (the limited claim's).
/// An array built once per statement (an InitPlan), so that the claims filter on it instead of
/// joining the side tables: an anti-join against a never-analyzed (empty) side table made the
/// planner estimate one row and choose a sequential scan and a sort of the whole backlog.
macro_rules! excluded_queues {
    () => {
        "ARRAY(SELECT queue FROM dj_paused_queues UNION ALL SELECT queue FROM dj_queue_limits)"
    };
}

/// The paused queues, as [`excluded_queues!`] reads them: what the limited claim leaves out.
macro_rules! paused_queues {
    () => {
        "ARRAY(SELECT queue FROM dj_paused_queues)"
    };
}

/// The columns a claim returns, in [`job_row`]'s order, of the claimed row `j`.
macro_rules! claimed_columns {
    () => {
        "j.id, j.priority, j.attempts, j.handler, j.last_error, j.run_at, j.locked_at, \
         j.failed_at, j.locked_by, j.queue, j.created_at, j.updated_at, j.name, j.max_run_time, \
         j.started_at, j.crashes, j.snoozes, j.unique_key, j.concurrency_key"
    };
}

/// The conditions every claimable row meets beyond its queue: ready, not held, within the
/// worker's priorities (`$2`, `$3`). Spelled as conditions on the index `delayed_jobs_ready`
/// (`priority, run_at`) or `delayed_jobs_queue_ready` (`queue, priority, run_at`), so that
/// both claims walk an index in claim order and stop after `LIMIT` rows.
macro_rules! ready_rows {
    () => {
        concat!(ready!("now()"), " AND priority >= $2 AND priority <= $3")
    };
}

/// Claims the rows of the CTE `picked` for worker `$1`, returning them. The ids are read
/// once into an array (an InitPlan), so the UPDATE finds each row by its primary key whatever
/// the planner guesses of how many `picked` holds (a join guessed large hashed the table).
macro_rules! claim_picked {
    () => {
        concat!(
            "UPDATE delayed_jobs AS j SET locked_at = now(), locked_by = $1, started_at = NULL, \
                 unique_key = CASE WHEN j.unique_running THEN j.unique_key END \
             WHERE j.id = ANY (ARRAY(SELECT id FROM picked)) \
             RETURNING ",
            claimed_columns!()
        )
    };
}

/// The claim for a worker of every queue: lock up to `$4` ready rows, skipping rows other
/// workers hold, in one statement. Only a registered worker claims (the `dj_workers` check
/// is one InitPlan, run once): a worker that was declared dead cannot take new rows under its
/// old name. The CTE picks ids with `FOR UPDATE SKIP LOCKED` walking `delayed_jobs_ready` in
/// claim order, once (`MATERIALIZED`); the UPDATE takes exactly those ([`claim_picked!`]),
/// never `IN (subquery)`, which lets the planner run the locking subquery again and lock
/// extra rows.
#[doc(hidden)]
pub const CLAIM: &str = concat!(
    "WITH picked AS MATERIALIZED ( \
         SELECT id FROM delayed_jobs WHERE ",
    ready_rows!(),
    " AND concurrency_key IS NULL \
       AND EXISTS (SELECT 1 FROM dj_workers WHERE name = $1) \
       AND (queue IS NULL OR queue <> ALL (",
    excluded_queues!(),
    ")) \
     ORDER BY priority, run_at LIMIT $4 FOR UPDATE SKIP LOCKED) ",
    claim_picked!()
);

/// The claim for a worker of listed queues (`$5`). One index walk cannot give several
/// queues' rows in claim order (`delayed_jobs_queue_ready` is ordered by queue first), and a
/// walk of `delayed_jobs_ready` filtered by queue reads every row of the other queues ahead
/// of them. So: `cand` reads the first `$4` ready rows of each listed queue (an ordered walk
/// of its part of `delayed_jobs_queue_ready`, no locks) and keeps the first `$4` of them in
/// claim order; `quota` counts them per listed queue (one row per queue, which the planner
/// can count: grouping `cand` made it guess a thousand); `picked` then locks that many rows of each
/// queue, again walking its index part in order with `SKIP LOCKED`, so that a row another
/// worker is claiming at the same moment is passed over for the next one of its queue. No
/// more than `$4` rows are ever locked.
#[doc(hidden)]
pub const CLAIM_QUEUES: &str = concat!(
    "WITH cand AS MATERIALIZED ( \
         SELECT q.name, c.priority, c.run_at \
         FROM (SELECT DISTINCT unnest($5::text[])) AS q(name) \
         CROSS JOIN LATERAL ( \
             SELECT priority, run_at FROM delayed_jobs \
             WHERE queue = q.name AND ",
    ready_rows!(),
    " AND concurrency_key IS NULL \
             ORDER BY priority, run_at LIMIT $4) AS c \
         WHERE EXISTS (SELECT 1 FROM dj_workers WHERE name = $1) \
           AND q.name <> ALL (",
    excluded_queues!(),
    ") \
         ORDER BY c.priority, c.run_at LIMIT $4), \
     quota AS ( \
         SELECT q.name, (SELECT count(*) FROM cand WHERE cand.name = q.name) AS n \
         FROM (SELECT DISTINCT unnest($5::text[])) AS q(name)), \
     picked AS MATERIALIZED ( \
         SELECT p.id FROM quota \
         CROSS JOIN LATERAL ( \
             SELECT id FROM delayed_jobs \
             WHERE queue = quota.name AND ",
    ready_rows!(),
    " AND concurrency_key IS NULL \
             ORDER BY priority, run_at LIMIT quota.n FOR UPDATE SKIP LOCKED) AS p) ",
    claim_picked!()
);

/// The claim of limited jobs (a row with a `concurrency_key`, or of a queue in
/// `dj_queue_limits`), which the claims above never take. It runs after
/// `LIMITED_CLAIM_LOCK` in the same transaction, so limited claims are made one at a time
/// across the cluster, each counting the running rows it competes with on a snapshot taken
/// after the previous one committed. Candidates (`cand`, the first `$5` in claim order) come
/// from two ordered sources, each served by an index whatever the statistics say: the first
/// `$5` rows of each limited queue (`delayed_jobs_queue_ready`), and the first `$5` keyed rows.
/// They are ranked per key and then per queue; a candidate starts only if the running count
/// plus its rank stays within each limit. The running counts (`krun`, `qrun`) are counted once
/// per key and per queue, each through its index, and kept (`MATERIALIZED`): inlined, the
/// planner ran a queue's count again for every candidate. The final UPDATE re-checks each row (READ COMMITTED
/// re-reads a row changed meanwhile), so a row cancelled or deleted since the candidates were
/// read is left alone.
macro_rules! limited_claim_sql {
    ($lim_predicate:literal, $queue_predicate:literal) => {
        concat!(
            "WITH lim AS (SELECT queue, max_running FROM dj_queue_limits), \
             cand AS ( \
                 SELECT id, queue, ckey, klim, priority, run_at FROM ( \
                     SELECT c.id, c.queue, c.concurrency_key AS ckey, \
                            coalesce(c.concurrency_limit, 1) AS klim, c.priority, c.run_at \
                     FROM lim CROSS JOIN LATERAL ( \
                         SELECT id, queue, concurrency_key, concurrency_limit, priority, run_at \
                         FROM delayed_jobs WHERE queue = lim.queue AND ",
            ready_rows!(),
            " ORDER BY priority, run_at LIMIT $5) AS c \
                     WHERE lim.queue <> ALL (",
            paused_queues!(),
            ") ",
            $lim_predicate,
            " UNION \
                     (SELECT id, queue, concurrency_key, coalesce(concurrency_limit, 1), priority, run_at \
                      FROM delayed_jobs WHERE concurrency_key IS NOT NULL AND ",
            ready_rows!(),
            " AND (queue IS NULL OR queue <> ALL (",
            paused_queues!(),
            ")) ",
            $queue_predicate,
            " ORDER BY priority, run_at LIMIT $5)) AS u \
                 WHERE EXISTS (SELECT 1 FROM dj_workers WHERE name = $1) \
                 ORDER BY priority, run_at LIMIT $5), \
             krun AS MATERIALIZED ( \
                 SELECT k.ckey, r.n FROM (SELECT DISTINCT ckey FROM cand WHERE ckey IS NOT NULL) AS k \
                 CROSS JOIN LATERAL ( \
                     SELECT count(*) AS n FROM delayed_jobs \
                     WHERE concurrency_key = k.ckey AND ",
            running!(),
            ") AS r), \
             qrun AS MATERIALIZED ( \
                 SELECT lim.queue, r.n FROM lim \
                 CROSS JOIN LATERAL ( \
                     SELECT count(*) AS n FROM delayed_jobs \
                     WHERE queue = lim.queue AND ",
            running!(),
            ") AS r \
                 WHERE lim.queue IN (SELECT queue FROM cand)), \
             kranked AS ( \
                 SELECT c.*, row_number() OVER (PARTITION BY c.ckey ORDER BY c.priority, c.run_at, c.id) AS kn \
                 FROM cand c), \
             kpass AS ( \
                 SELECT k.* FROM kranked k LEFT JOIN krun r ON r.ckey = k.ckey \
                 WHERE k.ckey IS NULL OR k.kn + coalesce(r.n, 0) <= k.klim), \
             qranked AS ( \
                 SELECT k.*, row_number() OVER (PARTITION BY k.queue ORDER BY k.priority, k.run_at, k.id) AS qn \
                 FROM kpass k), \
             picked AS ( \
                 SELECT q.id FROM qranked q \
                 LEFT JOIN lim l ON l.queue = q.queue LEFT JOIN qrun r ON r.queue = q.queue \
                 WHERE l.queue IS NULL OR q.qn + coalesce(r.n, 0) <= l.max_running \
                 ORDER BY q.priority, q.run_at LIMIT $4) \
             UPDATE delayed_jobs AS j SET locked_at = now(), locked_by = $1, started_at = NULL, \
                 unique_key = CASE WHEN j.unique_running THEN j.unique_key END \
             FROM picked WHERE j.id = picked.id AND j.locked_at IS NULL AND j.failed_at IS NULL \
             RETURNING ",
            claimed_columns!()
        )
    };
}

/// Whether any limited job may be claimable: a queue limit exists, or a ready row has a key.
const LIMITED_WORK: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM dj_queue_limits) \
     OR EXISTS (SELECT 1 FROM delayed_jobs WHERE concurrency_key IS NOT NULL \
                AND ",
    ready!("now()"),
    ")"
);

/// [`NO_JIT`]'s text, for statements sent with it.
macro_rules! no_jit {
    () => {
        "SET LOCAL jit = off"
    };
}

/// The first statement of a claim's own transaction: no JIT compilation. The listed-queues
/// and limited claims hold a `LIMIT` the planner cannot see (per queue, per key), so on a
/// large table their estimated cost crosses `jit_above_cost`; compiling them took 20 ms and
/// 630 ms per claim in a million-row backlog, for statements that run in a few.
const NO_JIT: &str = no_jit!();

/// Taken (until commit) before a limited claim: one limited claim at a time, cluster-wide.
/// The key is dj's own: "dj" and "limits" as two 32-bit halves. Sent with [`NO_JIT`].
const LIMITED_CLAIM_LOCK: &str = concat!(
    no_jit!(),
    "; SELECT pg_advisory_xact_lock(1785331712, 1818848616)"
);

/// A stored schedule's columns.
macro_rules! cron_columns {
    () => {
        "name, expression, tz, missed, job_name, handler, queue, priority, from_code, \
         last_fire_at, next_fire_at"
    };
}

/// The schedules whose next fire time has come.
const CRON_DUE: &str = concat!(
    "SELECT ",
    cron_columns!(),
    " FROM dj_cron WHERE next_fire_at <= now() ORDER BY name"
);

fn schedule_row(row: &Row) -> ScheduleRow {
    ScheduleRow {
        name: row.get(0),
        expression: row.get(1),
        tz: row.get(2),
        missed: Missed::parse(row.get(3)),
        job_name: row.get(4),
        handler: row.get(5),
        queue: row.get(6),
        priority: row.get(7),
        from_code: row.get(8),
        last_fire_at: row.get(9),
        next_fire_at: row.get(10),
    }
}

/// The limited claim for a worker of every queue.
#[doc(hidden)]
pub const CLAIM_LIMITED: &str = limited_claim_sql!("", "");
/// The limited claim for a worker of listed queues (`$6`).
#[doc(hidden)]
pub const CLAIM_LIMITED_QUEUES: &str = limited_claim_sql!(
    "AND lim.queue = ANY($6::text[])",
    "AND queue = ANY($6::text[])"
);

const COMPLETE: &str = "DELETE FROM delayed_jobs WHERE id = ANY($1) AND locked_by = $2";

/// A failed attempt's reschedule, or a snooze (attempts and last_error as they were).
const RETRY: &str = "UPDATE delayed_jobs AS j \
     SET attempts = t.attempts, last_error = CASE WHEN t.snoozed THEN j.last_error ELSE t.err END, \
         snoozes = j.snoozes + t.snoozed::int, run_at = now() + t.delay * interval '1 second', \
         locked_at = CASE WHEN t.release THEN NULL ELSE now() END, \
         locked_by = CASE WHEN t.release THEN NULL ELSE j.locked_by END, updated_at = now() \
     FROM unnest($1::int8[], $2::int4[], $3::float8[], $4::text[], $5::bool[], $7::bool[]) \
          AS t(id, attempts, delay, err, release, snoozed) \
     WHERE j.id = t.id AND j.locked_by = $6";

/// A permanent failure, kept: a unique job's key is freed.
const FAIL_KEEP: &str = "UPDATE delayed_jobs AS j \
     SET attempts = t.attempts, last_error = t.err, failed_at = now(), unique_key = NULL, \
         locked_at = NULL, locked_by = NULL, updated_at = now() \
     FROM unnest($1::int8[], $2::int4[], $3::text[]) AS t(id, attempts, err) \
     WHERE j.id = t.id AND j.locked_by = $4";

/// An UPDATE that makes rows claimable again (retry, run now, unlock, release), run so that
/// workers idle on LISTEN hear of it as they hear of an insert: one NOTIFY at commit when any
/// row changed, none otherwise. Its one row is the count of rows changed. (Claims and
/// completions never notify.)
macro_rules! waking {
    ($update:expr) => {
        concat!(
            "WITH changed AS (",
            $update,
            " RETURNING 1) SELECT count(*), \
             CASE WHEN count(*) > 0 THEN pg_notify('delayed_jobs', '')::text END FROM changed"
        )
    };
}

/// How many rows a [`waking!`] statement changed.
fn changed(rows: &[Row]) -> u64 {
    rows.first()
        .map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0))
}

const UNLOCK: &str = waking!(
    "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL \
     WHERE id = ANY($1) AND locked_by = $2"
);

const MARK_STARTED: &str = "UPDATE delayed_jobs SET started_at = now() \
     WHERE id = ANY($1) AND locked_by = $2 AND started_at IS NULL";

const RELEASE_ORPHANED: &str = waking!(
    "UPDATE delayed_jobs \
     SET locked_at = NULL, locked_by = NULL, crashes = crashes + 1 \
     WHERE id = ANY($1) AND locked_by = $2"
);

/// Cancels job `$1`: a waiting row fails for good as "cancelled" (its unique key freed); a
/// running one gets a request in `dj_cancels`. Returns (dequeued, requested) counts.
const CANCEL: &str = "WITH target AS ( \
         SELECT id, locked_at IS NOT NULL AS running FROM delayed_jobs \
         WHERE id = $1 AND failed_at IS NULL FOR UPDATE), \
     dequeued AS ( \
         UPDATE delayed_jobs AS j SET failed_at = now(), last_error = 'cancelled', \
                unique_key = NULL, updated_at = now() \
         FROM target t WHERE j.id = t.id AND NOT t.running RETURNING j.id), \
     requested AS ( \
         INSERT INTO dj_cancels (job_id) SELECT id FROM target WHERE running \
         ON CONFLICT DO NOTHING RETURNING job_id) \
     SELECT (SELECT count(*) FROM dequeued), (SELECT count(*) FROM target WHERE running)";

/// Cancel requests whose job no longer runs (it ended, or was cancelled).
const CANCEL_PRUNE: &str = "DELETE FROM dj_cancels c WHERE NOT EXISTS ( \
     SELECT 1 FROM delayed_jobs j WHERE j.id = c.job_id AND j.locked_at IS NOT NULL)";

/// Up to `$2` rows failed for good more than `$1` seconds ago, oldest first.
const PRUNE_FAILED: &str = concat!(
    "WITH old AS ( \
         SELECT id FROM delayed_jobs \
         WHERE ",
    failed!(),
    " AND failed_at < now() - $1 * interval '1 second' \
         ORDER BY failed_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
     DELETE FROM delayed_jobs AS j USING old WHERE j.id = old.id"
);

/// Per queue: ready, scheduled, running and failed counts, and the oldest ready row's age.
const JOB_STATS: &str = concat!(
    "SELECT queue, \
       count(*) FILTER (WHERE ",
    ready!("now()"),
    "), \
       count(*) FILTER (WHERE ",
    scheduled!("now()"),
    "), \
       count(*) FILTER (WHERE ",
    running!(),
    "), \
       count(*) FILTER (WHERE ",
    failed!(),
    "), \
       extract(epoch FROM now() - min(run_at) FILTER ( \
           WHERE ",
    ready!("now()"),
    "))::float8 \
     FROM delayed_jobs GROUP BY queue ORDER BY queue NULLS FIRST"
);

const WORKER_COLUMNS: &str = "name, host, pid, queues, version, started_at, heartbeat_at, running";

impl Store for PgStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn migrate(&self) -> Result<Vec<u32>> {
        self.run(async |conn: &mut Session| {
            let tx = conn.transaction().await?;
            // `IF NOT EXISTS` and `DROP ... IF EXISTS` answer with NOTICEs ("relation ...
            // already exists, skipping"), which the driver would log as INFO lines.
            tx.batch_execute("SET LOCAL client_min_messages = warning")
                .await?;
            let lock = Sql::Built("SELECT pg_advisory_xact_lock(hashtext('dj: migrate'))");
            tx.execute(lock, &[], &[]).await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS dj_schema_migrations ( \
                     version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
            let done: Vec<i32> = tx
                .query(
                    Sql::Built("SELECT version FROM dj_schema_migrations"),
                    &[],
                    &[],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut applied = Vec::new();
            for &(version, sql) in MIGRATIONS {
                if done.contains(&(version as i32)) {
                    continue;
                }
                tx.batch_execute(sql).await?;
                tx.execute(
                    Sql::Built("INSERT INTO dj_schema_migrations (version) VALUES ($1)"),
                    &[Type::INT4],
                    &[&(version as i32)],
                )
                .await?;
                applied.push(version);
            }
            tx.commit().await?;
            conn.clear_statements();
            Ok(applied)
        })
    }

    fn check_schema(&self) -> Result<()> {
        self.run(async |conn: &mut Session| {
            conn.batch_execute(&format!(
                "SELECT {COLUMNS} FROM delayed_jobs LIMIT 0; \
                 SELECT {WORKER_COLUMNS} FROM dj_workers LIMIT 0; \
                 SELECT task, ran_at, ran_by FROM dj_maintenance LIMIT 0; \
                 SELECT queue, paused_at FROM dj_paused_queues LIMIT 0; \
                 SELECT queue, max_running FROM dj_queue_limits LIMIT 0; \
                 SELECT job_id, requested_at FROM dj_cancels LIMIT 0; \
                 SELECT {} FROM dj_cron LIMIT 0; \
                 SELECT minute, succeeded, failed FROM dj_throughput LIMIT 0",
                cron_columns!()
            ))
            .await
        })
    }

    fn now(&self) -> Result<SystemTime> {
        self.run(async |conn: &mut Session| {
            Ok(query(conn, "SELECT now()", &[], &[]).await?[0].get(0))
        })
    }

    fn job_insert_many(&self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
        io::block_on(self.insert(rows))
    }

    #[cfg(feature = "tokio")]
    fn as_postgres(&self) -> Option<&PgStore> {
        Some(self)
    }

    /// Limited jobs first (their limits bound how many), then the rest with the room left.
    fn job_claim(&self, p: &ClaimParams<'_>) -> Result<Vec<JobRow>> {
        let min = p.min_priority.unwrap_or(i32::MIN);
        let max = p.max_priority.unwrap_or(i32::MAX);
        let mut jobs: Vec<JobRow> = self.run(async |conn: &mut Session| {
            let mut jobs = Vec::new();
            if self.limited.due() {
                let rows = query(conn, LIMITED_WORK, &[], &[]).await?;
                let any = rows.first().is_some_and(|r| r.get::<_, bool>(0));
                self.limited.found(any);
                if any {
                    jobs = claim_limited(conn, p, min, max).await?;
                }
            }
            let limit = (p.limit - jobs.len()) as i64;
            if limit == 0 {
                return Ok(jobs);
            }
            let types = [
                Type::TEXT,
                Type::INT4,
                Type::INT4,
                Type::INT8,
                Type::TEXT_ARRAY,
            ];
            let rows = if p.queues.is_empty() {
                query(conn, CLAIM, &types[..4], &[&p.worker, &min, &max, &limit]).await?
            } else {
                let tx = conn.transaction().await?;
                tx.batch_execute(NO_JIT).await?;
                let rows = tx
                    .query(
                        Sql::Fixed(CLAIM_QUEUES),
                        &types,
                        &[&p.worker, &min, &max, &limit, &p.queues],
                    )
                    .await?;
                tx.commit().await?;
                rows
            };
            jobs.extend(rows.iter().map(job_row));
            Ok(jobs)
        })?;
        super::claim_order(&mut jobs);
        Ok(jobs)
    }

    fn job_complete(&self, worker: &str, ids: &[JobId]) -> Result<()> {
        self.run(async |conn: &mut Session| {
            execute(
                conn,
                COMPLETE,
                &[Type::INT8_ARRAY, Type::TEXT],
                &[&ids, &worker],
            )
            .await?;
            Ok(())
        })
    }

    fn job_retry(&self, worker: &str, retries: &[Retry]) -> Result<()> {
        if retries.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = retries.iter().map(|r| r.id).collect();
        let attempts: Vec<i32> = retries.iter().map(|r| r.attempts).collect();
        let delays: Vec<f64> = retries.iter().map(|r| r.delay.as_secs_f64()).collect();
        let errors: Vec<&str> = retries.iter().map(|r| r.last_error.as_str()).collect();
        let release: Vec<bool> = retries.iter().map(|r| r.release).collect();
        let snoozed: Vec<bool> = retries.iter().map(|r| r.snoozed).collect();
        self.run(async |conn: &mut Session| {
            execute(
                conn,
                RETRY,
                &[
                    Type::INT8_ARRAY,
                    Type::INT4_ARRAY,
                    Type::FLOAT8_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::BOOL_ARRAY,
                    Type::TEXT,
                    Type::BOOL_ARRAY,
                ],
                &[
                    &ids, &attempts, &delays, &errors, &release, &worker, &snoozed,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn job_fail(&self, worker: &str, fails: &[Fail]) -> Result<()> {
        let (destroy, keep): (Vec<&Fail>, Vec<&Fail>) = fails.iter().partition(|f| f.destroy);
        let destroy_ids: Vec<i64> = destroy.iter().map(|f| f.id).collect();
        let keep_ids: Vec<i64> = keep.iter().map(|f| f.id).collect();
        let attempts: Vec<i32> = keep.iter().map(|f| f.attempts).collect();
        let errors: Vec<&str> = keep.iter().map(|f| f.last_error.as_str()).collect();
        self.run(async |conn: &mut Session| {
            if !destroy_ids.is_empty() {
                let types = [Type::INT8_ARRAY, Type::TEXT];
                execute(conn, COMPLETE, &types, &[&destroy_ids, &worker]).await?;
            }
            if !keep_ids.is_empty() {
                execute(
                    conn,
                    FAIL_KEEP,
                    &[
                        Type::INT8_ARRAY,
                        Type::INT4_ARRAY,
                        Type::TEXT_ARRAY,
                        Type::TEXT,
                    ],
                    &[&keep_ids, &attempts, &errors, &worker],
                )
                .await?;
            }
            Ok(())
        })
    }

    fn job_unlock(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.waking_by_worker(UNLOCK, worker, ids)
    }

    fn job_mark_started(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.by_worker(MARK_STARTED, worker, ids)
    }

    fn job_release_orphaned(&self, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.waking_by_worker(RELEASE_ORPHANED, worker, ids)
    }

    fn job_unlock_worker(&self, worker: &str) -> Result<u64> {
        self.run(async |conn: &mut Session| {
            let rows = query(
                conn,
                waking!(
                    "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL \
                     WHERE locked_by = $1"
                ),
                &[Type::TEXT],
                &[&worker],
            )
            .await?;
            Ok(changed(&rows))
        })
    }

    fn job_list(&self, filter: &JobFilter) -> Result<Vec<JobRow>> {
        let statement = filter::list(&DIALECT, filter, COLUMNS);
        self.run(async |conn: &mut Session| {
            let sql = Sql::Built(&statement.sql);
            let rows = conn
                .query(sql, &types(&statement), &params(&statement))
                .await?;
            Ok(rows.iter().map(job_row).collect())
        })
    }

    fn job_count(&self, filter: &JobFilter) -> Result<i64> {
        let statement = filter::count(&DIALECT, filter);
        self.run(async |conn: &mut Session| {
            let sql = Sql::Built(&statement.sql);
            let rows = conn
                .query(sql, &types(&statement), &params(&statement))
                .await?;
            Ok(rows[0].get(0))
        })
    }

    fn job_delete(&self, filter: &JobFilter) -> Result<u64> {
        let statement = filter::delete(&DIALECT, filter);
        self.run(async |conn: &mut Session| {
            let sql = Sql::Built(&statement.sql);
            conn.execute(sql, &types(&statement), &params(&statement))
                .await
        })
    }

    /// Every change makes rows claimable: workers idle on LISTEN are woken.
    fn job_update(&self, filter: &JobFilter, change: filter::Change) -> Result<u64> {
        let statement = filter::update(&DIALECT, filter, change);
        let waking = format!(waking!("{}"), statement.sql);
        self.run(async |conn: &mut Session| {
            let sql = Sql::Built(&waking);
            let rows = conn
                .query(sql, &types(&statement), &params(&statement))
                .await?;
            Ok(changed(&rows))
        })
    }

    fn job_stats(&self) -> Result<Vec<QueueStats>> {
        self.run(async |conn: &mut Session| {
            let rows = query(conn, JOB_STATS, &[], &[]).await?;
            Ok(rows
                .iter()
                .map(|r| QueueStats {
                    queue: r.get(0),
                    ready: r.get(1),
                    scheduled: r.get(2),
                    running: r.get(3),
                    failed: r.get(4),
                    oldest_ready_age: r.get(5),
                })
                .collect())
        })
    }

    fn job_count_by_locker(&self) -> Result<Vec<(Option<String>, i64)>> {
        let sql = filter::lockers(&DIALECT);
        self.run(async |conn: &mut Session| {
            let rows = conn.query(Sql::Built(&sql), &[], &[]).await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn worker_register(&self, w: &WorkerInfo<'_>) -> Result<()> {
        let queues = w.queues_column();
        self.run(async |conn: &mut Session| {
            execute(
                conn,
                "INSERT INTO dj_workers (name, host, pid, queues, version) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name) DO UPDATE SET host = $2, pid = $3, queues = $4, version = $5, \
                     started_at = now(), heartbeat_at = now(), running = 0",
                &[Type::TEXT, Type::TEXT, Type::INT4, Type::TEXT, Type::TEXT],
                &[&w.name, &w.host, &w.pid, &queues, &VERSION],
            )
            .await?;
            Ok(())
        })
    }

    fn worker_heartbeat(&self, name: &str, running: i32) -> Result<bool> {
        self.run(async |conn: &mut Session| {
            let n = execute(
                conn,
                "UPDATE dj_workers SET heartbeat_at = now(), running = $2 WHERE name = $1",
                &[Type::TEXT, Type::INT4],
                &[&name, &running],
            )
            .await?;
            Ok(n > 0)
        })
    }

    fn worker_remove(&self, name: &str, stale_after: Option<Duration>) -> Result<bool> {
        let secs = stale_after.map(|d| d.as_secs_f64());
        self.run(async |conn: &mut Session| {
            let n = execute(
                conn,
                "DELETE FROM dj_workers WHERE name = $1 \
                 AND ($2::float8 IS NULL OR heartbeat_at < now() - $2 * interval '1 second')",
                &[Type::TEXT, Type::FLOAT8],
                &[&name, &secs],
            )
            .await?;
            Ok(n > 0)
        })
    }

    fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        self.run(async |conn: &mut Session| {
            let rows = query(
                conn,
                concat!(
                    "SELECT name, host, pid, queues, version, started_at, heartbeat_at, running ",
                    "FROM dj_workers ORDER BY name"
                ),
                &[],
                &[],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| WorkerRow {
                    name: r.get(0),
                    host: r.get(1),
                    pid: r.get(2),
                    queues: r.get(3),
                    version: r.get(4),
                    started_at: r.get(5),
                    heartbeat_at: r.get(6),
                    running: r.get(7),
                })
                .collect())
        })
    }

    fn job_prune_failed(&self, older_than: Duration, limit: i64) -> Result<u64> {
        let secs = older_than.as_secs_f64();
        self.run(async |conn: &mut Session| {
            execute(
                conn,
                PRUNE_FAILED,
                &[Type::FLOAT8, Type::INT8],
                &[&secs, &limit],
            )
            .await
        })
    }

    fn queue_pause(&self, queue: &str, paused: bool) -> Result<bool> {
        self.run(async |conn: &mut Session| {
            let n = if paused {
                execute(
                    conn,
                    "INSERT INTO dj_paused_queues (queue) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[Type::TEXT],
                    &[&queue],
                )
                .await?
            } else {
                execute(
                    conn,
                    "DELETE FROM dj_paused_queues WHERE queue = $1",
                    &[Type::TEXT],
                    &[&queue],
                )
                .await?
            };
            if n > 0 && !paused {
                // Workers idle on LISTEN look again at once.
                conn.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
            }
            Ok(n > 0)
        })
    }

    fn queue_paused(&self) -> Result<Vec<String>> {
        self.run(async |conn: &mut Session| {
            let rows = query(
                conn,
                "SELECT queue FROM dj_paused_queues ORDER BY queue",
                &[],
                &[],
            )
            .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn job_cancel(&self, id: JobId) -> Result<Cancel> {
        self.run(async |conn: &mut Session| {
            // The row is locked first, so a claim (SKIP LOCKED) cannot take it between the
            // look and the change; a claim that has it already is waited for.
            let rows = query(conn, CANCEL, &[Type::INT8], &[&id]).await?;
            let (dequeued, requested): (i64, i64) =
                rows.first().map_or((0, 0), |r| (r.get(0), r.get(1)));
            Ok(if dequeued > 0 {
                Cancel::Dequeued
            } else if requested > 0 {
                Cancel::Requested
            } else {
                Cancel::NotFound
            })
        })
    }

    fn job_cancel_requested(&self, ids: &[JobId]) -> Result<Vec<JobId>> {
        self.run(async |conn: &mut Session| {
            let rows = query(
                conn,
                "SELECT job_id FROM dj_cancels WHERE job_id = ANY($1)",
                &[Type::INT8_ARRAY],
                &[&ids],
            )
            .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn cancel_prune(&self) -> Result<u64> {
        self.run(async |conn: &mut Session| execute(conn, CANCEL_PRUNE, &[], &[]).await)
    }

    fn queue_limit(&self, queue: &str, max_running: Option<i32>) -> Result<bool> {
        self.run(async |conn: &mut Session| {
            let n = match max_running {
                Some(max) => {
                    execute(
                        conn,
                        "INSERT INTO dj_queue_limits (queue, max_running) VALUES ($1, $2) \
                         ON CONFLICT (queue) DO UPDATE SET max_running = EXCLUDED.max_running, set_at = now() \
                         WHERE dj_queue_limits.max_running <> EXCLUDED.max_running",
                        &[Type::TEXT, Type::INT4],
                        &[&queue, &max],
                    )
                    .await?
                }
                None => {
                    execute(
                        conn,
                        "DELETE FROM dj_queue_limits WHERE queue = $1",
                        &[Type::TEXT],
                        &[&queue],
                    )
                    .await?
                }
            };
            if n > 0 {
                // A raised or removed limit may let idle workers start jobs.
                conn.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
            }
            Ok(n > 0)
        })
    }

    fn queue_limits(&self) -> Result<Vec<(String, i32)>> {
        self.run(async |conn: &mut Session| {
            let rows = query(
                conn,
                "SELECT queue, max_running FROM dj_queue_limits ORDER BY queue",
                &[],
                &[],
            )
            .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn throughput_add(&self, succeeded: i64, failed: i64) -> Result<()> {
        self.run(async |conn: &mut Session| {
            execute(
                conn,
                "INSERT INTO dj_throughput AS t (minute, succeeded, failed) \
                 VALUES (date_trunc('minute', now()), $1, $2) \
                 ON CONFLICT (minute) DO UPDATE SET succeeded = t.succeeded + EXCLUDED.succeeded, \
                     failed = t.failed + EXCLUDED.failed",
                &[Type::INT8, Type::INT8],
                &[&succeeded, &failed],
            )
            .await?;
            execute(
                conn,
                "DELETE FROM dj_throughput WHERE minute < now() - interval '1 day'",
                &[],
                &[],
            )
            .await?;
            Ok(())
        })
    }

    fn throughput(&self, minutes: u32) -> Result<Vec<(SystemTime, i64, i64)>> {
        let minutes = f64::from(minutes);
        self.run(async |conn: &mut Session| {
            let rows = query(
                conn,
                "SELECT minute, succeeded, failed FROM dj_throughput \
                 WHERE minute > now() - $1 * interval '1 minute' ORDER BY minute",
                &[Type::FLOAT8],
                &[&minutes],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect())
        })
    }

    fn cron_upsert(&self, s: &ScheduleDef, next: Option<SystemTime>) -> Result<()> {
        self.run(async |conn: &mut Session| {
            execute(
                conn,
                "INSERT INTO dj_cron AS c (name, expression, tz, missed, job_name, handler, queue, \
                                           priority, from_code, next_fire_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (name) DO UPDATE SET \
                     next_fire_at = CASE WHEN c.expression = EXCLUDED.expression AND c.tz = EXCLUDED.tz \
                                         THEN c.next_fire_at ELSE EXCLUDED.next_fire_at END, \
                     expression = EXCLUDED.expression, tz = EXCLUDED.tz, missed = EXCLUDED.missed, \
                     job_name = EXCLUDED.job_name, handler = EXCLUDED.handler, \
                     queue = EXCLUDED.queue, priority = EXCLUDED.priority, \
                     from_code = EXCLUDED.from_code, updated_at = now() \
                 WHERE (c.expression, c.tz, c.missed, c.job_name, c.handler, c.queue, c.priority, \
                        c.from_code) IS DISTINCT FROM (EXCLUDED.expression, EXCLUDED.tz, \
                        EXCLUDED.missed, EXCLUDED.job_name, EXCLUDED.handler, EXCLUDED.queue, \
                        EXCLUDED.priority, EXCLUDED.from_code)",
                &[
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT4,
                    Type::BOOL,
                    Type::TIMESTAMPTZ,
                ],
                &[
                    &s.name,
                    &s.expression,
                    &s.tz,
                    &s.missed.as_str(),
                    &s.job_name,
                    &s.handler,
                    &s.queue,
                    &s.priority,
                    &s.from_code,
                    &next,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn cron_remove(&self, name: &str) -> Result<bool> {
        self.run(async |conn: &mut Session| {
            let n = execute(
                conn,
                "DELETE FROM dj_cron WHERE name = $1",
                &[Type::TEXT],
                &[&name],
            )
            .await?;
            Ok(n > 0)
        })
    }

    fn cron_list(&self) -> Result<Vec<ScheduleRow>> {
        self.run(async |conn: &mut Session| {
            let sql = concat!("SELECT ", cron_columns!(), " FROM dj_cron ORDER BY name");
            let rows = query(conn, sql, &[], &[]).await?;
            Ok(rows.iter().map(schedule_row).collect())
        })
    }

    fn cron_due(&self) -> Result<(SystemTime, Vec<ScheduleRow>)> {
        self.run(async |conn: &mut Session| {
            let rows = query(conn, CRON_DUE, &[], &[]).await?;
            let now = query(conn, "SELECT now()", &[], &[]).await?[0].get(0);
            Ok((now, rows.iter().map(schedule_row).collect()))
        })
    }

    fn cron_fire(&self, fire: &CronFire<'_>) -> Result<bool> {
        let CronFire {
            name,
            expected,
            next,
            last,
            jobs,
        } = *fire;
        self.run(async |conn: &mut Session| {
            let tx = conn.transaction().await?;
            let moved = tx
                .execute(
                    Sql::Unnamed(
                        "UPDATE dj_cron SET next_fire_at = $3, \
                             last_fire_at = coalesce($4, last_fire_at), updated_at = now() \
                         WHERE name = $1 AND next_fire_at = $2",
                    ),
                    &[
                        Type::TEXT,
                        Type::TIMESTAMPTZ,
                        Type::TIMESTAMPTZ,
                        Type::TIMESTAMPTZ,
                    ],
                    &[&name, &expected, &next, &last],
                )
                .await?;
            if moved == 0 {
                return Ok(false);
            }
            for step in &insert_steps(jobs, crate::INSERT_BATCH) {
                let sql = Sql::Unnamed(step.sql());
                tx.query(sql, step.types(), &step.params()).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    fn maintenance_claim(&self, task: &str, worker: &str, every: Duration) -> Result<bool> {
        let secs = every.as_secs_f64();
        self.run(async |conn: &mut Session| {
            let n = execute(
                conn,
                "UPDATE dj_maintenance SET ran_at = now(), ran_by = $2 \
                 WHERE task = $1 AND ran_at <= now() - $3 * interval '1 second'",
                &[Type::TEXT, Type::TEXT, Type::FLOAT8],
                &[&task, &worker, &secs],
            )
            .await?;
            Ok(n > 0)
        })
    }

    fn wakeups(&self) -> Option<Wakeups> {
        match (&self.listen_at, self.statements) {
            (Some(at), _) => Some(Wakeups::Listen(at.shown.clone())),
            (None, Statements::Unnamed) => Some(Wakeups::Poll(
                "pooler=transaction: LISTEN needs a server session of its own; \
                 add a direct `listen_url` to the url for NOTIFY wake-ups",
            )),
            (None, Statements::Prepared) => None,
        }
    }

    fn wait_for_jobs(&self, timeout: Duration, stop: &StopFlag) -> bool {
        if matches!(self.wakeups(), Some(Wakeups::Poll(_))) {
            stop.sleep(timeout);
            return false;
        }
        let deadline = Instant::now() + timeout;
        let mut slot = self.listener.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            match io::block_on(self.listen()) {
                Ok(listener) => {
                    *slot = Some(listener);
                    // Jobs may have arrived before we listened: look again at once.
                    return true;
                }
                Err(e) => {
                    tracing::debug!("LISTEN unavailable, polling instead: {e}");
                    drop(slot);
                    stop.sleep(timeout);
                    return false;
                }
            }
        }
        let listener = slot.as_mut().expect("listener present");
        loop {
            let now = Instant::now();
            if stop.is_set() || now >= deadline {
                return false;
            }
            let slice = (deadline - now).min(Duration::from_millis(100));
            match listener.wakeups.recv_timeout(slice) {
                Ok(()) => {
                    // Drain what else arrived: one wake-up is enough.
                    while listener.wakeups.try_recv().is_ok() {}
                    return true;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    tracing::debug!("LISTEN connection lost, polling until it is back");
                    *slot = None;
                    return false;
                }
            }
        }
    }
}

impl PgStore {
    /// One of the statements that change the rows a worker holds, by id.
    fn by_worker(&self, sql: &'static str, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.run(async |conn: &mut Session| {
            execute(conn, sql, &[Type::INT8_ARRAY, Type::TEXT], &[&ids, &worker]).await
        })
    }

    /// [`PgStore::by_worker`] for a [`waking!`] statement.
    fn waking_by_worker(&self, sql: &'static str, worker: &str, ids: &[JobId]) -> Result<u64> {
        self.run(async |conn: &mut Session| {
            let rows = query(conn, sql, &[Type::INT8_ARRAY, Type::TEXT], &[&ids, &worker]).await?;
            Ok(changed(&rows))
        })
    }

    /// A connection of its own (not pooled; to `listen_url` if given) that LISTENs; its task
    /// forwards each notification as a wake-up, and ends (closing the channel) when the
    /// connection does.
    async fn listen(&self) -> Result<Listener> {
        let bound = self.limits.connect;
        let config = self
            .listen_at
            .as_ref()
            .map_or(self.pool.config(), |at| &at.config);
        let (client, mut connection) = tokio::time::timeout(bound, config.connect(NoTls))
            .await
            .map_err(|_| self.timeout("to a connection attempt", bound))?
            .map_err(|e| self.error(e))?;
        let (wake, wakeups) = mpsc::channel();
        tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        if wake.send(()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!("LISTEN connection failed: {e}");
                        return;
                    }
                }
            }
        });
        tokio::time::timeout(
            self.limits.statement,
            client.batch_execute(&format!("LISTEN {CHANNEL}")),
        )
        .await
        .map_err(|_| self.timeout("a statement", self.limits.statement))?
        .map_err(|e| self.error(e))?;
        Ok(Listener {
            _client: client,
            wakeups,
        })
    }
}

/// PostgreSQL's spelling of the filtered commands.
const DIALECT: filter::Dialect = filter::Dialect {
    now: "now()",
    placeholder: |n| format!("${n}"),
    position: "strpos",
};

/// A filtered statement's parameter types (for a statement sent unnamed).
fn types(statement: &filter::Statement) -> Vec<Type> {
    statement
        .values
        .iter()
        .map(|v| match v {
            filter::Value::Text(_) => Type::TEXT,
            filter::Value::Int(_) => Type::INT8,
        })
        .collect()
}

/// A filtered statement's values, bound as PostgreSQL parameters.
fn params(statement: &filter::Statement) -> Vec<&(dyn ToSql + Sync)> {
    statement
        .values
        .iter()
        .map(|v| match v {
            filter::Value::Text(t) => t as &(dyn ToSql + Sync),
            filter::Value::Int(i) => i as &(dyn ToSql + Sync),
        })
        .collect()
}

/// The schema SQL, as `schema` prints it.
pub(crate) fn schema_sql() -> String {
    super::schema_of(MIGRATIONS)
}

#[cfg(test)]
mod tests {
    use super::{hide_password, shown_url, split_url, Limits, Pooling, Statements};
    use std::time::Duration;

    #[test]
    fn dj_keys_leave_the_url() {
        let (url, limits, pooling) = split_url(
            "postgres://u@h/db?sslmode=disable&statement_timeout=2s&pool_size=3&pool_timeout=250ms",
        )
        .unwrap();
        assert_eq!(pooling, Pooling::default());
        assert_eq!(url, "postgres://u@h/db?sslmode=disable");
        assert_eq!(limits.statement, Duration::from_secs(2));
        assert_eq!(limits.pool.size, 3);
        assert_eq!(limits.pool.timeout, Duration::from_millis(250));
        let (url, limits, _) = split_url("postgres://u@h/db?pool_size=1").unwrap();
        assert_eq!((url.as_str(), limits.pool.size), ("postgres://u@h/db", 1));
        assert_eq!(split_url("postgres://u@h/db").unwrap().1, Limits::default());
        let bad = split_url("postgres://u@h/db?pool_size=0").unwrap_err();
        assert!(bad.contains("at least 1"), "{bad}");
        let bad = split_url("postgres://u@h/db?statement_timeout=soon").unwrap_err();
        assert!(bad.contains("statement_timeout"), "{bad}");
    }

    #[test]
    fn pooler_keys_leave_the_url() {
        let (url, _, pooling) = split_url(
            "postgres://u@bouncer:6432/db?pooler=transaction&sslmode=disable\
             &listen_url=postgres%3A%2F%2Fu%3Ap%40db%3A5432%2Fdb%3Fsslmode%3Ddisable",
        )
        .unwrap();
        assert_eq!(url, "postgres://u@bouncer:6432/db?sslmode=disable");
        assert_eq!(pooling.statements, Statements::Unnamed);
        assert_eq!(
            pooling.listen_url.as_deref(),
            Some("postgres://u:p@db:5432/db?sslmode=disable")
        );
        let unnamed = |url: &str| split_url(url).unwrap().2.statements == Statements::Unnamed;
        assert!(unnamed("postgres://u@h/db?pgbouncer=true"));
        assert!(!unnamed("postgres://u@h/db?pooler=session"));
        assert!(!unnamed("postgres://u@h/db?pooler=none"));
        assert!(!unnamed("postgres://u@h/db"));
        let bad = split_url("postgres://u@h/db?pooler=statement").unwrap_err();
        assert!(bad.contains("pool_mode = transaction"), "{bad}");
        let bad = split_url("postgres://u@h/db?pooler=pgbouncer").unwrap_err();
        assert!(bad.contains("`transaction`, `session` or `none`"), "{bad}");
        let bad = split_url("postgres://u@h/db?listen_url=postgres%3").unwrap_err();
        assert!(bad.contains("listen_url"), "{bad}");
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            hide_password("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(hide_password("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            shown_url(
                "postgres://u:a@h/db?pooler=transaction&listen_url=postgres%3A%2F%2Fu%3Ab%40d%2Fdb"
            ),
            "postgres://u:***@h/db?pooler=transaction&listen_url=postgres://u:***@d/db"
        );
        assert_eq!(
            hide_password("postgres://h/db?listen_url=postgres://u:b@d/db"),
            "postgres://h/db?listen_url=postgres://u:b@d/db",
            "only the URL's own user part is its password"
        );
    }
}
