//! The SQLite backend's SQL text: every statement it prepares, by name. Times are stored as
//! text (`%Y-%m-%d %H:%M:%f`, UTC) and read back as unix seconds (`unixepoch(.., 'subsec')`).
//! A statement that takes `?N` lists its parameters in its doc.

use std::sync::LazyLock;

use crate::store::filter::{
    self, failed, key_limit, limits_pick, queue_limits, running, sequence_head,
};

/// The database's clock as stored text, a literal (`clock!()`), constant within one
/// statement; `clock!(ready)` is `filter`'s state rule `ready!` by this clock.
macro_rules! clock {
    ($($state:ident)?) => {
        clock!(@ "strftime('%Y-%m-%d %H:%M:%f', 'now')" $($state)?)
    };
    (@ $now:literal) => {
        $now
    };
    (@ $now:literal $state:ident) => {
        filter::$state!($now)
    };
}

/// The database's clock as stored text; constant within one statement.
pub(super) const NOW: &str = clock!();

/// Every column, times as unix seconds (REAL).
pub(super) const COLUMNS: &str =
    "id, priority, attempts, handler, last_error, unixepoch(run_at, 'subsec'), \
     unixepoch(locked_at, 'subsec'), unixepoch(failed_at, 'subsec'), locked_by, queue, \
     unixepoch(created_at, 'subsec'), unixepoch(updated_at, 'subsec'), name, max_run_time, \
     unixepoch(started_at, 'subsec'), crashes, snoozes, unique_key, concurrency_key";

/// `dj_workers`' columns, times as unix seconds.
pub(super) const WORKER_COLUMNS: &str =
    "name, host, pid, queues, version, unixepoch(started_at, 'subsec'), \
     unixepoch(heartbeat_at, 'subsec'), running";

/// A stored schedule's columns, times as unix seconds.
pub(super) const CRON_COLUMNS: &str =
    "name, expression, tz, missed, job_name, handler, queue, priority, \
     from_code, unixepoch(last_fire_at, 'subsec'), unixepoch(next_fire_at, 'subsec')";

/// A time as SQLite stores it, from unix seconds (`?N`).
pub(super) fn stored_time(param: usize) -> String {
    format!("strftime('%Y-%m-%d %H:%M:%f', ?{param}, 'unixepoch')")
}

/// SQLite's spelling of the filtered commands.
pub(super) const DIALECT: filter::Dialect = filter::Dialect {
    now: NOW,
    placeholder: |n| format!("?{n}"),
    position: "instr",
    positional: false,
};

// ---- Opening and migrating ----

/// Whether a file opened read-only can be read as it is (see `connect`).
pub(super) const READABLE: &str = "SELECT count(*) FROM sqlite_master";

pub(super) const CREATE_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS dj_schema_migrations ( \
                     version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)";

/// `?1`: a migration's version.
pub(super) const MIGRATION_DONE: &str =
    "SELECT EXISTS (SELECT 1 FROM dj_schema_migrations WHERE version = ?1)";

/// `?1`: a migration's version.
pub(super) static MIGRATION_APPLIED: LazyLock<String> = LazyLock::new(|| {
    format!("INSERT INTO dj_schema_migrations (version, applied_at) VALUES (?1, {NOW})")
});

/// Prepared (never run) by `check_schema`: each fails if a table or column dj needs is missing.
pub(super) static SCHEMA_CHECKS: LazyLock<[String; 9]> = LazyLock::new(|| {
    [
        format!("SELECT {COLUMNS} FROM delayed_jobs LIMIT 0"),
        format!("SELECT {WORKER_COLUMNS} FROM dj_workers LIMIT 0"),
        "SELECT task, ran_at, ran_by FROM dj_maintenance LIMIT 0".to_owned(),
        "SELECT queue, paused_at FROM dj_paused_queues LIMIT 0".to_owned(),
        "SELECT queue, max_running FROM dj_queue_limits LIMIT 0".to_owned(),
        "SELECT job_id, requested_at FROM dj_cancels LIMIT 0".to_owned(),
        format!("SELECT {CRON_COLUMNS} FROM dj_cron LIMIT 0"),
        "SELECT minute, succeeded, failed FROM dj_throughput LIMIT 0".to_owned(),
        "SELECT n FROM dj_wakeups LIMIT 0".to_owned(),
    ]
});

/// The database's clock, in unix seconds.
pub(super) const NOW_SECS: &str = "SELECT unixepoch('now', 'subsec')";

// ---- Transactions ----

/// A write transaction that takes the write lock up front, so the busy timeout applies
/// instead of a failed upgrade.
pub(super) const BEGIN: &str = "BEGIN IMMEDIATE";
pub(super) const COMMIT: &str = "COMMIT";
pub(super) const ROLLBACK: &str = "ROLLBACK";
/// An insert's savepoint inside a caller's transaction.
pub(super) const SAVEPOINT: &str = "SAVEPOINT dj_enqueue";
pub(super) const RELEASE: &str = "RELEASE dj_enqueue";
pub(super) const ROLLBACK_TO: &str = "ROLLBACK TO dj_enqueue; RELEASE dj_enqueue";

// ---- Wake-ups ----

/// Moves the wake-up counter: rows may have become claimable.
pub(super) const WAKE: &str = "UPDATE dj_wakeups SET n = n + 1";

/// The wake-up number: the inserts counted by `delayed_jobs`' AUTOINCREMENT sequence plus
/// the `dj_wakeups` counter.
pub(super) const WAKEUPS: &str = "SELECT (SELECT coalesce(max(seq), 0) FROM sqlite_sequence \
                         WHERE name = 'delayed_jobs') \
                      + (SELECT n FROM dj_wakeups)";

// ---- Inserts ----

/// The one insert of this backend, a row at a time, for every driver: name, handler,
/// priority, queue, absolute run time (unix seconds) or none, delay in seconds from the
/// database's now, max_run_time, concurrency key and limit, rate (starts and period), unique
/// key and whether it is held until done.
pub(super) static INSERT_ROW: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO delayed_jobs (name, handler, priority, queue, run_at, max_run_time, \
                                   concurrency_key, concurrency_limit, rate_limit, rate_period_ms, \
                                   unique_key, unique_running, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, {RUN_AT}, ?7, ?8, ?9, ?10, ?11, ?12, ?13, {NOW}, {NOW}) \
         RETURNING id, 0 AS outcome"
    )
});

/// The run time an insert binds as `?5` (absolute, unix seconds) or `?6` (seconds from now).
pub(super) const RUN_AT: &str = "CASE WHEN ?5 IS NULL \
     THEN strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', ?6)) \
     ELSE strftime('%Y-%m-%d %H:%M:%f', ?5, 'unixepoch') END";

/// Run before [`INSERT_ROW`] for a unique row, with the same parameters and `?14`
/// (replace): finds the live row holding the key `?12`, which a replace updates if it is
/// still waiting. No row: the key is free, and the insert follows in the same transaction
/// (this UPDATE took the write lock, so no other insert of the key can come between).
pub(super) static UNIQUE_HOLDER: LazyLock<String> = LazyLock::new(|| {
    let replace = "?14 AND locked_at IS NULL";
    format!(
        "UPDATE delayed_jobs SET \
             handler = CASE WHEN {replace} THEN ?2 ELSE handler END, \
             priority = CASE WHEN {replace} THEN ?3 ELSE priority END, \
             queue = CASE WHEN {replace} THEN ?4 ELSE queue END, \
             run_at = CASE WHEN {replace} THEN {RUN_AT} ELSE run_at END, \
             max_run_time = CASE WHEN {replace} THEN ?7 ELSE max_run_time END, \
             concurrency_key = CASE WHEN {replace} THEN ?8 ELSE concurrency_key END, \
             concurrency_limit = CASE WHEN {replace} THEN ?9 ELSE concurrency_limit END, \
             rate_limit = CASE WHEN {replace} THEN ?10 ELSE rate_limit END, \
             rate_period_ms = CASE WHEN {replace} THEN ?11 ELSE rate_period_ms END, \
             updated_at = CASE WHEN {replace} THEN {NOW} ELSE updated_at END \
         WHERE unique_key = ?12 \
         RETURNING id, CASE WHEN {replace} THEN 2 ELSE 1 END AS outcome"
    )
});

// ---- Claims ----

/// What every claim requires of a row: ready, in the priority range, claimed by a registered
/// worker, not of a paused queue, of the listed queues (`?4`, a JSON array; `[]` is every
/// queue).
pub(super) const CLAIMABLE: &str = concat!(
    clock!(ready),
    " AND priority >= ?2 AND priority <= ?3 \
     AND EXISTS (SELECT 1 FROM dj_workers WHERE name = ?1) \
     AND NOT EXISTS (SELECT 1 FROM dj_paused_queues p WHERE p.queue = delayed_jobs.queue) \
     AND (?4 = '[]' OR queue IN (SELECT value FROM json_each(?4)))"
);

/// The claim of unlimited jobs: up to `?5` rows in priority then run_at order.
pub(super) static CLAIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE delayed_jobs SET locked_at = {NOW}, locked_by = ?1, started_at = NULL, \
             unique_key = CASE WHEN unique_running THEN unique_key END \
         WHERE id IN ( \
             SELECT id FROM delayed_jobs \
             WHERE {CLAIMABLE} AND concurrency_key IS NULL \
               AND NOT EXISTS (SELECT 1 FROM dj_queue_limits l WHERE l.queue = delayed_jobs.queue) \
               AND NOT EXISTS (SELECT 1 FROM dj_rate_limits r \
                               WHERE r.kind = 'queue' AND r.name = delayed_jobs.queue) \
             ORDER BY priority, run_at \
             LIMIT ?5) \
         RETURNING {COLUMNS}"
    )
});

/// Whether any limited job may be claimable (see the PostgreSQL backend).
pub(super) static LIMITED_WORK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT EXISTS (SELECT 1 FROM dj_queue_limits) \
             OR EXISTS (SELECT 1 FROM dj_rate_limits WHERE kind = 'queue') \
             OR EXISTS (SELECT 1 FROM delayed_jobs WHERE concurrency_key IS NOT NULL \
                        AND {ready})",
        ready = clock!(ready),
    )
});

/// The claim of limited jobs, as on PostgreSQL: each limited queue's first `?6` candidates,
/// and the first ready rows of each key (`heads`: one index seek each, from the last), the
/// keys walked from after `?7` and then (`wrap`) from the first up to `?7`, at most `?6` of
/// them, one index probe each; ranked per key and then per queue, each started only within
/// its limits counting the running rows and its rates counting the starts still counting,
/// taken by priority and within a priority one per key in turn. [`RATE_RECORD`] follows it in
/// its transaction.
pub(super) static CLAIM_LIMITED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH RECURSIVE lim AS ({lim}), \
         walk (k, n) AS ( \
             SELECT {next_cursor}, 1 \
             UNION ALL \
             SELECT {next_walk}, walk.n + 1 FROM walk WHERE walk.k IS NOT NULL AND walk.n < ?6), \
         wrap (k, n) AS ( \
             SELECT {next_first}, (SELECT count(*) FROM walk WHERE k IS NOT NULL) + 1 \
             WHERE ?7 IS NOT NULL \
             UNION ALL \
             SELECT {next_wrap}, wrap.n + 1 FROM wrap \
             WHERE wrap.k IS NOT NULL AND wrap.k < ?7 AND wrap.n < ?6), \
         keys AS ( \
             SELECT k FROM walk WHERE k IS NOT NULL \
             UNION SELECT k FROM wrap WHERE k IS NOT NULL AND k <= ?7 AND n <= ?6), \
         per_key AS ( \
             SELECT max(1, (2 * ?5 + count(*) - 1) / max(count(*), 1)) AS n FROM keys), \
         heads (k, id, priority, run_at, n) AS ( \
             SELECT keys.k, h.id, h.priority, h.run_at, 1 FROM keys JOIN delayed_jobs h \
             ON h.id = (SELECT id FROM delayed_jobs \
                        WHERE concurrency_key = keys.k AND {CLAIMABLE} AND {head} \
                        ORDER BY priority, run_at, id LIMIT 1) \
             UNION ALL \
             SELECT heads.k, h.id, h.priority, h.run_at, heads.n + 1 FROM heads JOIN delayed_jobs h \
             ON h.id = (SELECT id FROM delayed_jobs \
                        WHERE concurrency_key = heads.k \
                          AND (priority, run_at, id) > (heads.priority, heads.run_at, heads.id) \
                          AND {CLAIMABLE} AND {head} \
                        ORDER BY priority, run_at, id LIMIT 1) \
             WHERE heads.n < (SELECT n FROM per_key)), \
         cand AS ( \
             SELECT id, queue, concurrency_key AS ckey, {klim} AS klim, \
                    rate_limit AS row_rlim, rate_period_ms AS row_rper, \
                    priority, run_at FROM delayed_jobs \
             WHERE id IN ( \
                 SELECT id FROM delayed_jobs \
                 WHERE {CLAIMABLE} AND queue IN (SELECT queue FROM lim) AND {head} \
                 ORDER BY priority, run_at LIMIT ?6) \
                OR id IN (SELECT id FROM heads)), \
         krun AS ( \
             SELECT concurrency_key AS ckey, count(*) AS n FROM delayed_jobs \
             WHERE concurrency_key IN (SELECT ckey FROM cand WHERE klim < {unbounded}) \
               AND {running} GROUP BY 1), \
         qrun AS ( \
             SELECT queue, count(*) AS n FROM delayed_jobs \
             WHERE queue IN (SELECT queue FROM lim WHERE max_running IS NOT NULL) \
               AND queue IN (SELECT queue FROM cand) AND {running} GROUP BY 1), \
         kstarted AS ( \
             SELECT substr(bucket, 5) AS ckey, count(*) AS n FROM dj_rate_starts \
             WHERE bucket IN (SELECT 'key:' || ckey FROM cand WHERE ckey IS NOT NULL) \
               AND until > {NOW} GROUP BY bucket), \
         qstarted AS ( \
             SELECT substr(bucket, 7) AS queue, count(*) AS n FROM dj_rate_starts \
             WHERE bucket IN (SELECT 'queue:' || queue FROM lim WHERE qrate IS NOT NULL) \
               AND until > {NOW} GROUP BY bucket), \
         {pick} \
         UPDATE delayed_jobs SET locked_at = {NOW}, locked_by = ?1, started_at = NULL, \
             unique_key = CASE WHEN unique_running THEN unique_key END \
         WHERE id IN (SELECT id FROM picked) \
         RETURNING {COLUMNS}",
        lim = queue_limits!(),
        running = running!(),
        pick = limits_pick!("?5"),
        klim = key_limit!(),
        head = sequence_head!(),
        unbounded = crate::model::UNBOUNDED_LIMIT,
        next_cursor = next_key("coalesce(?7, '')"),
        next_walk = next_key("walk.k"),
        next_first = next_key("''"),
        next_wrap = next_key("wrap.k"),
    )
});

/// The key after `after` (an SQL expression) among the keys of rows not failed for good, or
/// null: one probe of `delayed_jobs_key_heads`. Every key is longer than `''`.
fn next_key(after: &str) -> String {
    format!(
        "(SELECT min(concurrency_key) FROM delayed_jobs \
          WHERE concurrency_key > {after} AND failed_at IS NULL)"
    )
}

/// A stored time `?ms` milliseconds after `$at` (SQL expressions).
macro_rules! plus_ms {
    ($at:literal, $ms:literal) => {
        concat!(
            "strftime('%Y-%m-%d %H:%M:%f', ",
            $at,
            ", printf('%+.3f seconds', ",
            $ms,
            " / 1000.0))"
        )
    };
}

/// `?1` the ids a limited claim took (a JSON array): each start with a rate counted, one row
/// per bucket (its key's, its queue's) until its claim time plus the rate's period, as the
/// PostgreSQL claim's `recorded` does.
pub(super) const RATE_RECORD: &str = concat!(
    "INSERT INTO dj_rate_starts (bucket, until) \
     SELECT 'key:' || j.concurrency_key, ",
    plus_ms!("j.locked_at", "coalesce(o.period_ms, j.rate_period_ms)"),
    " FROM delayed_jobs j LEFT JOIN dj_rate_limits o ON o.kind = 'key' AND o.name = j.concurrency_key \
     WHERE j.id IN (SELECT value FROM json_each(?1)) \
       AND coalesce(o.max_starts, j.rate_limit) IS NOT NULL \
     UNION ALL \
     SELECT 'queue:' || j.queue, ",
    plus_ms!("j.locked_at", "r.period_ms"),
    " FROM delayed_jobs j JOIN dj_rate_limits r ON r.kind = 'queue' AND r.name = j.queue \
     WHERE j.id IN (SELECT value FROM json_each(?1))"
);

/// When a rate's next start frees up, in seconds from now (see the PostgreSQL backend's).
pub(super) static RATE_REFILL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT (julianday(min(b.until)) - julianday('now')) * 86400.0 FROM ( \
             SELECT bucket, min(until) AS until FROM dj_rate_starts \
             WHERE until > {NOW} GROUP BY bucket) AS b \
         WHERE (b.bucket LIKE 'key:%' AND EXISTS (SELECT 1 FROM delayed_jobs \
                    WHERE concurrency_key = substr(b.bucket, 5) AND {ready})) \
            OR (b.bucket LIKE 'queue:%' AND EXISTS (SELECT 1 FROM delayed_jobs \
                    WHERE queue = substr(b.bucket, 7) AND {ready}))",
        ready = clock!(ready),
    )
});

// ---- Outcomes: ids as a JSON array (`?1`), the worker that holds them ----

/// `?1` ids, `?2` worker.
pub(super) const COMPLETE: &str =
    "DELETE FROM delayed_jobs WHERE id IN (SELECT value FROM json_each(?1)) AND locked_by = ?2";

/// `?1` id, `?2` attempts, `?3` error, `?4` delay in seconds, `?5` worker, `?6` release,
/// `?7` snoozed.
pub(super) static RETRY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE delayed_jobs SET attempts = ?2, \
             last_error = CASE WHEN ?7 THEN last_error ELSE ?3 END, snoozes = snoozes + ?7, \
             run_at = strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', ?4)), \
             locked_at = CASE WHEN ?6 THEN NULL ELSE {NOW} END, \
             locked_by = CASE WHEN ?6 THEN NULL ELSE locked_by END, updated_at = {NOW} \
         WHERE id = ?1 AND locked_by = ?5"
    )
});

/// `?1` id, `?2` worker: the row's name, if the worker holds it.
pub(super) const HELD_NAME: &str = "SELECT name FROM delayed_jobs WHERE id = ?1 AND locked_by = ?2";

/// `?1` id, `?2` worker: the row deleted.
pub(super) const FAIL_DELETE: &str = "DELETE FROM delayed_jobs WHERE id = ?1 AND locked_by = ?2";

/// `?1` id, `?2` worker: a finished job's row deleted, its name returned (none: the worker
/// no longer holds it).
pub(super) const COMPLETE_ONE: &str =
    "DELETE FROM delayed_jobs WHERE id = ?1 AND locked_by = ?2 RETURNING name";

/// `?1` id, `?2` name, `?3` state, `?4` value (JSON text), `?5` error: a job's outcome kept,
/// replacing an older one.
pub(super) static RESULT_KEEP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO dj_results (job_id, name, state, value, error, finished_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, {NOW}) \
         ON CONFLICT (job_id) DO UPDATE SET name = excluded.name, state = excluded.state, \
             value = excluded.value, error = excluded.error, finished_at = excluded.finished_at"
    )
});

/// `?1` ids, `?2` worker: those of the jobs the worker still holds.
pub(super) const HELD: &str =
    "SELECT id FROM delayed_jobs WHERE id IN (SELECT value FROM json_each(?1)) AND locked_by = ?2";

/// `?1` id.
pub(super) const RESULT_GET: &str = "SELECT state, value, error FROM dj_results WHERE job_id = ?1";

/// A failed attempt recorded in the history, if worker `?3` still holds job `?1`: `?2` its
/// number, `?4` its error, `?5` how long it ran in seconds (NULL: from the recorded start).
pub(super) static ATTEMPT_RECORD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO dj_attempts (job_id, attempt, worker, started_at, finished_at, error) \
         SELECT ?1, ?2, ?3, COALESCE(CASE WHEN ?5 IS NULL THEN NULL \
                    ELSE strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', ?5)) END, \
                    j.started_at, {NOW}), {NOW}, ?4 \
         FROM delayed_jobs j WHERE j.id = ?1 AND j.locked_by = ?3 \
         ON CONFLICT (job_id, attempt) DO UPDATE SET worker = excluded.worker, \
             started_at = excluded.started_at, finished_at = excluded.finished_at, \
             error = excluded.error"
    )
});

/// `?1` job, `?2` its newest attempt: the attempts older than its latest `MAX_ATTEMPTS_KEPT`.
pub(super) static ATTEMPT_TRIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "DELETE FROM dj_attempts WHERE job_id = ?1 AND attempt <= ?2 - {}",
        crate::model::MAX_ATTEMPTS_KEPT
    )
});

/// `?1` id, `?2` fraction, `?3` message: a running job's latest progress.
pub(super) static PROGRESS_WRITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO dj_progress (job_id, fraction, message, updated_at) \
         VALUES (?1, ?2, ?3, {NOW}) \
         ON CONFLICT (job_id) DO UPDATE SET fraction = excluded.fraction, \
             message = excluded.message, updated_at = excluded.updated_at"
    )
});

/// `?1` ids (JSON): the progress of jobs that ended.
pub(super) const PROGRESS_CLEAR: &str =
    "DELETE FROM dj_progress WHERE job_id IN (SELECT value FROM json_each(?1))";

/// `?1` ids (JSON): the progress of those that reported some, times as unix seconds.
pub(super) const PROGRESS_OF: &str =
    "SELECT job_id, fraction, message, unixepoch(updated_at, 'subsec') FROM dj_progress \
     WHERE job_id IN (SELECT value FROM json_each(?1))";

/// The progress of jobs whose rows are gone.
pub(super) const PROGRESS_PRUNE: &str = "DELETE FROM dj_progress \
     WHERE NOT EXISTS (SELECT 1 FROM delayed_jobs j WHERE j.id = dj_progress.job_id)";

/// `?1` job: its recorded attempts, oldest first, times as unix seconds.
pub(super) const ATTEMPT_LIST: &str =
    "SELECT attempt, worker, unixepoch(started_at, 'subsec'), unixepoch(finished_at, 'subsec'), \
     error FROM dj_attempts WHERE job_id = ?1 ORDER BY attempt";

/// `?1` age in seconds, `?2` most rows: attempts of jobs whose rows are gone.
pub(super) const ATTEMPT_PRUNE: &str = "DELETE FROM dj_attempts WHERE rowid IN ( \
         SELECT a.rowid FROM dj_attempts a \
         WHERE a.finished_at < strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', ?1)) \
           AND NOT EXISTS (SELECT 1 FROM delayed_jobs j WHERE j.id = a.job_id) \
         ORDER BY a.finished_at LIMIT ?2)";

/// `?1` age in seconds, `?2` most rows.
pub(super) const RESULT_PRUNE: &str = "DELETE FROM dj_results WHERE job_id IN ( \
         SELECT job_id FROM dj_results \
         WHERE finished_at < strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', ?1)) \
         ORDER BY finished_at LIMIT ?2)";

/// `?1` id, `?2` attempts, `?3` error, `?4` worker.
pub(super) static FAIL_KEEP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE delayed_jobs SET attempts = ?2, last_error = ?3, failed_at = {NOW}, \
             unique_key = NULL, locked_at = NULL, locked_by = NULL, updated_at = {NOW} \
         WHERE id = ?1 AND locked_by = ?4"
    )
});

/// `?1` ids, `?2` worker.
pub(super) const UNLOCK: &str = "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL \
                 WHERE id IN (SELECT value FROM json_each(?1)) AND locked_by = ?2";

/// `?1` ids, `?2` worker.
pub(super) static MARK_STARTED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE delayed_jobs SET started_at = {NOW} \
         WHERE id IN (SELECT value FROM json_each(?1)) AND locked_by = ?2 \
           AND started_at IS NULL"
    )
});

/// `?1` ids, `?2` worker.
pub(super) const RELEASE_ORPHANED: &str =
    "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL, crashes = crashes + 1 \
                 WHERE id IN (SELECT value FROM json_each(?1)) AND locked_by = ?2";

/// `?1` worker.
pub(super) const UNLOCK_WORKER: &str =
    "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL WHERE locked_by = ?1";

// ---- Reads for operators ----

/// Per queue: ready, scheduled, running, failed, and the oldest ready row's age in seconds.
pub(super) static STATS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT queue, \
           count(*) FILTER (WHERE {ready}), \
           count(*) FILTER (WHERE {scheduled}), \
           count(*) FILTER (WHERE {running}), \
           count(*) FILTER (WHERE {failed}), \
           unixepoch('now', 'subsec') - min(unixepoch(run_at, 'subsec')) FILTER ( \
               WHERE {ready}) \
         FROM delayed_jobs GROUP BY queue ORDER BY queue NULLS FIRST",
        ready = clock!(ready),
        scheduled = clock!(scheduled),
        running = running!(),
        failed = failed!(),
    )
});

/// `?1` older than (seconds), `?2` at most this many rows.
pub(super) const PRUNE_FAILED: &str = concat!(
    "DELETE FROM delayed_jobs WHERE id IN ( \
         SELECT id FROM delayed_jobs WHERE ",
    failed!(),
    " AND failed_at < strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', ?1)) \
         ORDER BY failed_at LIMIT ?2)"
);

// ---- Workers ----

/// `?1` name, `?2` host, `?3` pid, `?4` queues, `?5` version.
pub(super) static WORKER_REGISTER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO dj_workers (name, host, pid, queues, version, started_at, heartbeat_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, {NOW}, {NOW}) \
         ON CONFLICT (name) DO UPDATE SET host = ?2, pid = ?3, queues = ?4, version = ?5, \
             started_at = {NOW}, heartbeat_at = {NOW}, running = 0"
    )
});

/// `?1` name, `?2` running.
pub(super) static WORKER_HEARTBEAT: LazyLock<String> = LazyLock::new(|| {
    format!("UPDATE dj_workers SET heartbeat_at = {NOW}, running = ?2 WHERE name = ?1")
});

/// `?1` name, `?2` stale after (seconds), or null for any.
pub(super) const WORKER_REMOVE: &str = "DELETE FROM dj_workers WHERE name = ?1 AND (?2 IS NULL OR \
                     unixepoch(heartbeat_at, 'subsec') < unixepoch('now', 'subsec') - ?2)";

pub(super) static WORKER_LIST: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {WORKER_COLUMNS} FROM dj_workers ORDER BY name"));

/// `?1` task, `?2` worker, `?3` every (seconds).
pub(super) static MAINTENANCE_CLAIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE dj_maintenance SET ran_at = {NOW}, ran_by = ?2 \
         WHERE task = ?1 AND unixepoch(ran_at, 'subsec') <= unixepoch('now', 'subsec') - ?3"
    )
});

// ---- Queues ----

/// Priority aging, as on PostgreSQL: `?1` seconds a job has been ready, `?2` how many at
/// most.
pub(super) static AGE: LazyLock<String> = LazyLock::new(|| {
    let waited = "strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', ?1))";
    format!(
        "UPDATE delayed_jobs SET priority = priority - 1, updated_at = {NOW} \
         WHERE id IN ( \
             SELECT id FROM delayed_jobs \
             WHERE {waiting} AND run_at <= {waited} \
               AND priority = ( \
                   SELECT max(priority) FROM delayed_jobs \
                   WHERE {waiting} AND run_at <= {waited} \
                     AND priority > (SELECT min(priority) FROM delayed_jobs WHERE {ready})) \
             ORDER BY run_at LIMIT ?2)",
        waiting = filter::waiting!(),
        ready = clock!(ready),
    )
});

/// `?1` queue.
pub(super) const QUEUE_RESUME: &str = "DELETE FROM dj_paused_queues WHERE queue = ?1";
/// `?1` queue.
pub(super) const QUEUE_PAUSE: &str = "INSERT OR IGNORE INTO dj_paused_queues (queue) VALUES (?1)";
pub(super) const QUEUE_PAUSED: &str = "SELECT queue FROM dj_paused_queues ORDER BY queue";

/// `?1` queue, `?2` max running.
pub(super) static QUEUE_LIMIT_SET: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO dj_queue_limits (queue, max_running) VALUES (?1, ?2) \
         ON CONFLICT (queue) DO UPDATE SET max_running = excluded.max_running, \
             set_at = {NOW} \
         WHERE dj_queue_limits.max_running <> excluded.max_running"
    )
});
/// `?1` kind, `?2` name, `?3` starts, `?4` period in ms.
pub(super) static RATE_LIMIT_SET: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO dj_rate_limits (kind, name, max_starts, period_ms) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (kind, name) DO UPDATE SET max_starts = excluded.max_starts, \
             period_ms = excluded.period_ms, set_at = {NOW} \
         WHERE dj_rate_limits.max_starts <> excluded.max_starts \
            OR dj_rate_limits.period_ms <> excluded.period_ms"
    )
});
/// `?1` kind, `?2` name.
pub(super) const RATE_LIMIT_REMOVE: &str =
    "DELETE FROM dj_rate_limits WHERE kind = ?1 AND name = ?2";
pub(super) const RATE_LIMITS: &str =
    "SELECT kind, name, max_starts, period_ms FROM dj_rate_limits ORDER BY kind DESC, name";
/// The rate limits' starts that no longer count.
pub(super) static RATE_PRUNE: LazyLock<String> =
    LazyLock::new(|| format!("DELETE FROM dj_rate_starts WHERE until <= {NOW}"));

/// `?1` queue.
pub(super) const QUEUE_LIMIT_REMOVE: &str = "DELETE FROM dj_queue_limits WHERE queue = ?1";
pub(super) const QUEUE_LIMITS: &str =
    "SELECT queue, max_running FROM dj_queue_limits ORDER BY queue";

// ---- Cancels ----

/// `?1` id: whether the live row is running (none: no such live row).
pub(super) const CANCEL_RUNNING: &str =
    "SELECT locked_at IS NOT NULL FROM delayed_jobs WHERE id = ?1 AND failed_at IS NULL";
/// `?1` id.
pub(super) const CANCEL_REQUEST: &str = "INSERT OR IGNORE INTO dj_cancels (job_id) VALUES (?1)";
/// `?1` id.
pub(super) static CANCEL_DEQUEUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE delayed_jobs SET failed_at = {NOW}, last_error = 'cancelled', \
         unique_key = NULL, updated_at = {NOW} WHERE id = ?1"
    )
});
/// `?1` ids.
pub(super) const CANCEL_REQUESTED: &str =
    "SELECT job_id FROM dj_cancels WHERE job_id IN (SELECT value FROM json_each(?1))";
pub(super) const CANCEL_PRUNE: &str = "DELETE FROM dj_cancels WHERE NOT EXISTS ( \
                     SELECT 1 FROM delayed_jobs j \
                     WHERE j.id = dj_cancels.job_id AND j.locked_at IS NOT NULL)";

// ---- Throughput ----

/// `?1` succeeded, `?2` failed.
pub(super) const THROUGHPUT_ADD: &str = "INSERT INTO dj_throughput (minute, succeeded, failed) \
                 VALUES (strftime('%Y-%m-%d %H:%M:00.000', 'now'), ?1, ?2) \
                 ON CONFLICT (minute) DO UPDATE SET \
                     succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed";
pub(super) const THROUGHPUT_TRIM: &str =
    "DELETE FROM dj_throughput WHERE minute < strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 day')";
/// `?1` minutes.
pub(super) const THROUGHPUT: &str =
    "SELECT unixepoch(minute, 'subsec'), succeeded, failed FROM dj_throughput \
                 WHERE minute > strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%d minutes', ?1)) \
                 ORDER BY minute";

// ---- Schedules ----

/// `?1`..`?9` the definition's columns, `?10` the next fire time (unix seconds).
pub(super) static CRON_UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO dj_cron (name, expression, tz, missed, job_name, handler, queue, \
                              priority, from_code, next_fire_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, {next}) \
         ON CONFLICT (name) DO UPDATE SET \
             next_fire_at = CASE WHEN dj_cron.expression = excluded.expression \
                                  AND dj_cron.tz = excluded.tz \
                                 THEN dj_cron.next_fire_at ELSE excluded.next_fire_at END, \
             expression = excluded.expression, tz = excluded.tz, missed = excluded.missed, \
             job_name = excluded.job_name, handler = excluded.handler, \
             queue = excluded.queue, priority = excluded.priority, \
             from_code = excluded.from_code, updated_at = {NOW} \
         WHERE (dj_cron.expression, dj_cron.tz, dj_cron.missed, dj_cron.job_name, \
                dj_cron.handler, dj_cron.queue, dj_cron.priority, dj_cron.from_code) \
               IS NOT (excluded.expression, excluded.tz, excluded.missed, \
                excluded.job_name, excluded.handler, excluded.queue, \
                excluded.priority, excluded.from_code)",
        next = stored_time(10),
    )
});
/// `?1` name.
pub(super) const CRON_REMOVE: &str = "DELETE FROM dj_cron WHERE name = ?1";
pub(super) static CRON_LIST: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {CRON_COLUMNS} FROM dj_cron ORDER BY name"));
/// `?1` now (unix seconds).
pub(super) static CRON_DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {CRON_COLUMNS} FROM dj_cron \
         WHERE next_fire_at IS NOT NULL AND unixepoch(next_fire_at, 'subsec') <= ?1 \
         ORDER BY name"
    )
});
/// The compare-and-set of a firing: `?1` name, `?2` the next fire time read, `?3` the new
/// one, `?4` the last fire time enqueued (unix seconds).
pub(super) static CRON_MOVE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE dj_cron SET next_fire_at = {next}, \
             last_fire_at = coalesce({last}, last_fire_at), updated_at = {NOW} \
         WHERE name = ?1 AND next_fire_at = {expected}",
        expected = stored_time(2),
        next = stored_time(3),
        last = stored_time(4),
    )
});
