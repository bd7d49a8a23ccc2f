//! The MySQL backend's SQL text. Times are `DATETIME(6)` in UTC (every connection sets
//! `time_zone = '+00:00'`), read back as unix seconds (`UNIX_TIMESTAMP`) and written from
//! them (`FROM_UNIXTIME`). Parameters are positional (`?`), listed in each statement's doc in
//! order; a value used twice is bound twice. Id lists are written into the text as integers
//! (see `rows::id_list`), never strings.

use std::sync::LazyLock;

use crate::store::filter::{self, failed, running};

/// The database's clock, constant within one statement.
pub(super) const NOW: &str = "UTC_TIMESTAMP(6)";

/// The database's clock as a literal (`clock!()`), or `filter`'s state rule by this clock
/// (`clock!(ready)`).
macro_rules! clock {
    () => {
        "UTC_TIMESTAMP(6)"
    };
    ($state:ident) => {
        filter::$state!("UTC_TIMESTAMP(6)")
    };
}

/// A stored time as unix seconds (a double), from the column or expression `$t`.
macro_rules! secs {
    ($t:literal) => {
        concat!("(UNIX_TIMESTAMP(", $t, ") + 0e0)")
    };
}

/// Every column, times as unix seconds.
pub(super) const COLUMNS: &str = concat!(
    "id, priority, attempts, handler, last_error, ",
    secs!("run_at"),
    ", ",
    secs!("locked_at"),
    ", ",
    secs!("failed_at"),
    ", locked_by, queue, ",
    secs!("created_at"),
    ", ",
    secs!("updated_at"),
    ", name, max_run_time, ",
    secs!("started_at"),
    ", crashes, snoozes, unique_key, concurrency_key"
);

/// `dj_workers`' columns, times as unix seconds.
pub(super) const WORKER_COLUMNS: &str = concat!(
    "name, host, pid, queues, version, ",
    secs!("started_at"),
    ", ",
    secs!("heartbeat_at"),
    ", running"
);

/// A stored schedule's columns, times as unix seconds.
pub(super) const CRON_COLUMNS: &str = concat!(
    "name, expression, tz, missed, job_name, handler, queue, priority, from_code, ",
    secs!("last_fire_at"),
    ", ",
    secs!("next_fire_at")
);

/// A time `?` seconds from now (negative: before).
macro_rules! from_now {
    () => {
        "(UTC_TIMESTAMP(6) + INTERVAL ROUND(? * 1000000) MICROSECOND)"
    };
}

/// MySQL's spelling of the filtered commands.
pub(super) const DIALECT: filter::Dialect = filter::Dialect {
    now: NOW,
    placeholder: |_| "?".to_owned(),
    position: "instr",
    positional: true,
};

// ---- Opening and migrating ----

pub(super) const CREATE_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS dj_schema_migrations ( \
         version INT NOT NULL PRIMARY KEY, applied_at DATETIME(6) NOT NULL) \
     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

/// A lock that one `migrate` at a time holds (named, per database), released at its end.
/// `?`: the lock's name.
pub(super) const MIGRATE_LOCK: &str = "SELECT GET_LOCK(?, 60)";
/// `?`: the lock's name.
pub(super) const MIGRATE_UNLOCK: &str = "SELECT RELEASE_LOCK(?)";

pub(super) const MIGRATIONS_DONE: &str = "SELECT version FROM dj_schema_migrations";

/// `?`: a migration's version.
pub(super) const MIGRATION_APPLIED: &str =
    "INSERT INTO dj_schema_migrations (version, applied_at) VALUES (?, UTC_TIMESTAMP(6))";

/// Run (reading no row) by `check_schema`: each fails if a table or column dj needs is
/// missing.
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
pub(super) const NOW_SECS: &str = concat!("SELECT ", secs!("UTC_TIMESTAMP(6)"));

// ---- Wake-ups ----

/// Moves the wake-up counter: rows may have become claimable.
pub(super) const WAKE: &str = "UPDATE dj_wakeups SET n = n + 1";

/// The wake-up number: the highest id (every insert moves it) plus the counter.
pub(super) const WAKEUPS: &str = "SELECT (SELECT coalesce(max(id), 0) FROM delayed_jobs) \
                                  + (SELECT n FROM dj_wakeups WHERE id = 1)";

// ---- Inserts ----

/// An insert's savepoint inside a caller's transaction.
pub(super) const SAVEPOINT: &str = "SAVEPOINT dj_enqueue";
pub(super) const RELEASE: &str = "RELEASE SAVEPOINT dj_enqueue";
pub(super) const ROLLBACK_TO: &str = "ROLLBACK TO SAVEPOINT dj_enqueue";

/// The run time an insert binds: `?` absolute (unix seconds) or none, then `?` seconds from
/// now. Counted from the epoch as a `DATETIME`, not by `FROM_UNIXTIME`, which reads the
/// session's time zone: a caller's connection may not be in UTC as dj's own are.
const RUN_AT: &str = concat!(
    "coalesce(TIMESTAMP'1970-01-01 00:00:00' + INTERVAL ROUND(? * 1000000) MICROSECOND, ",
    from_now!(),
    ")"
);

/// The one insert: name, handler, priority, queue, absolute run time or none, delay, max run
/// time, concurrency key and limit, rate (starts, period), unique key, held until done.
pub(super) static INSERT_ROW: LazyLock<String> = LazyLock::new(|| insert_rows(1));

/// [`INSERT_ROW`] for `n` rows in one statement, their values one row after another.
pub(super) fn insert_rows(n: usize) -> String {
    let row = format!("(?, ?, ?, ?, {RUN_AT}, ?, ?, ?, ?, ?, ?, ?, {NOW}, {NOW})");
    format!(
        "INSERT INTO delayed_jobs (name, handler, priority, queue, run_at, max_run_time, \
                                   concurrency_key, concurrency_limit, rate_limit, rate_period_ms, \
                                   unique_key, unique_running, created_at, updated_at) \
         VALUES {}",
        vec![row; n].join(", ")
    )
}

/// How the server numbers the rows of one multi-row insert: InnoDB's `autoinc_lock_mode`
/// (0 or 1: consecutively; 2: possibly interleaved with other inserts) and the step between
/// ids.
pub(super) const ID_NUMBERING: &str = "SELECT CAST(@@innodb_autoinc_lock_mode AS SIGNED) AS a, \
         CAST(@@auto_increment_increment AS SIGNED) AS b";

/// The live row holding unique key `?`: its id and whether it is still waiting. A plain
/// read: the insert that met the key already holds a shared lock on it, and many enqueues of
/// one key asking for the row's exclusive lock on top would deadlock each other.
pub(super) const UNIQUE_HOLDER: &str =
    "SELECT id AS a, locked_at IS NULL AS b FROM delayed_jobs WHERE unique_key = ?";

/// [`UNIQUE_HOLDER`], locked, for a replace.
pub(super) const UNIQUE_HOLDER_LOCKED: &str =
    "SELECT id AS a, locked_at IS NULL AS b FROM delayed_jobs WHERE unique_key = ? FOR UPDATE";

/// A waiting holder replaced by the new row's values: handler, priority, queue, run time
/// (two values, as the insert's), max run time, concurrency key and limit, rate (two), then
/// the unique key it holds.
pub(super) static UNIQUE_REPLACE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE delayed_jobs SET handler = ?, priority = ?, queue = ?, run_at = {RUN_AT}, \
             max_run_time = ?, concurrency_key = ?, concurrency_limit = ?, rate_limit = ?, \
             rate_period_ms = ?, updated_at = {NOW} \
         WHERE unique_key = ? AND locked_at IS NULL"
    )
});

// ---- Claims ----

/// Whether worker `?` is registered: its row share-locked to the claim's end, so that a
/// worker declared dead (its row deleted) cannot claim after the rescuer released its jobs.
pub(super) const WORKER_ALIVE: &str = "SELECT 1 FROM dj_workers WHERE name = ? LOCK IN SHARE MODE";

/// How many of migration 20's four procedures the database has.
pub(super) const WORKFLOW_ROUTINES_PRESENT: &str =
    "SELECT count(*) FROM information_schema.routines \
     WHERE routine_schema = DATABASE() AND routine_type = 'PROCEDURE' \
       AND routine_name IN ('dj_workflow_release', 'dj_workflow_finish', \
                            'dj_workflow_step_retried', 'dj_workflow_restore')";

/// The claim's choice of unlimited jobs: `?` lowest and `?` highest priority, then `{queues}`
/// (empty, or `AND queue IN (?, ...)`) and `{limit}`; the rows locked, skipping those another
/// claim holds.
pub(super) fn claim_pick(queues: usize, limit: usize) -> String {
    format!(
        "SELECT id FROM delayed_jobs \
         WHERE {ready} AND priority >= ? AND priority <= ? AND concurrency_key IS NULL{queues} \
           AND NOT EXISTS (SELECT 1 FROM dj_paused_queues p WHERE p.queue = delayed_jobs.queue) \
           AND NOT EXISTS (SELECT 1 FROM dj_queue_limits l WHERE l.queue = delayed_jobs.queue) \
           AND NOT EXISTS (SELECT 1 FROM dj_rate_limits r \
                           WHERE r.kind = 'queue' AND r.name = delayed_jobs.queue) \
         ORDER BY priority, run_at, id LIMIT {limit} FOR UPDATE SKIP LOCKED",
        ready = clock!(ready),
        queues = queue_list(queues),
    )
}

/// `AND queue IN (?, ...)` for `n` listed queues; nothing for none (every queue).
pub(super) fn queue_list(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" AND queue IN ({})", vec!["?"; n].join(", "))
    }
}

/// The claim of rows `{ids}` for worker `?`, those still waiting: the plain claim's were
/// chosen `FOR UPDATE` and are; the limited claim's choice read them without a lock.
pub(super) fn claim_lock(ids: &str) -> String {
    format!(
        "UPDATE delayed_jobs SET locked_at = {NOW}, locked_by = ?, started_at = NULL, \
             unique_key = CASE WHEN unique_running THEN unique_key END \
         WHERE id IN ({ids}) AND locked_at IS NULL AND failed_at IS NULL"
    )
}

/// Rows `{ids}` that worker `?` holds, every column.
pub(super) fn held_rows(ids: &str) -> String {
    format!("SELECT {COLUMNS} FROM delayed_jobs WHERE id IN ({ids}) AND locked_by = ?")
}

/// Whether any limited job may be claimable.
pub(super) const LIMITED_WORK: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM dj_queue_limits) \
         OR EXISTS (SELECT 1 FROM dj_rate_limits WHERE kind = 'queue') \
         OR EXISTS (SELECT 1 FROM delayed_jobs WHERE concurrency_key IS NOT NULL AND ",
    clock!(ready),
    ")"
);

/// The limited claims' turn: one at a time (see migration 0008).
pub(super) const LIMITED_TURN: &str =
    "SELECT task FROM dj_maintenance WHERE task = 'limited_claim' FOR UPDATE";

/// The queues with a limit or a rate (`filter::queue_limits!`, without a FULL JOIN, which
/// MySQL lacks).
const QUEUE_LIMITS_ROWS: &str =
    "SELECT l.queue, l.max_running, r.max_starts AS qrate, r.period_ms AS qper \
     FROM dj_queue_limits l \
     LEFT JOIN dj_rate_limits r ON r.kind = 'queue' AND r.name = l.queue \
     UNION ALL \
     SELECT r.name, NULL, r.max_starts, r.period_ms FROM dj_rate_limits r \
     WHERE r.kind = 'queue' AND NOT EXISTS (SELECT 1 FROM dj_queue_limits l WHERE l.queue = r.name)";

/// The choice of the limited claim, as on SQLite (see its `CLAIM_LIMITED`): the ids to lock,
/// with named parameters `:min`, `:max` (priorities), `:limit`, `:window`, `:cursor` (the
/// last key walked, or NULL) and `:q0`.. for `queues` listed queues. Run after
/// [`LIMITED_TURN`] in the claim's transaction.
///
/// The keys are walked from the cursor as SQLite's claim walks them (`walk`, then `wrap`
/// from the first key up to the cursor), each as one loose index scan of
/// `delayed_jobs_key_heads` (a jump from key to key): a recursive walk of
/// `min(concurrency_key) > k` read the whole index at each step (MariaDB does not seek a
/// correlated bound), 100 keys over 100,000 rows ten million entries a claim.
///
/// The rows of limited queues are looked for only where some queue has a limit or a rate
/// (`EXISTS (SELECT 1 FROM lim)`, which MariaDB reads once): otherwise it read the ready rows
/// in claim order to the end, finding no row of a queue in `lim`.
///
/// Each step of a key's walk in claim order (`heads`) seeks its next row in
/// `delayed_jobs_key_heads` as a range: MariaDB reads a row comparison
/// `(priority, run_at, id) > (..)` as a filter over the key's rows from the first, so that a
/// walk of n rows read n²/2 entries (a million for a claim of 1,000 rows of one key under
/// load), and left to itself it may walk `delayed_jobs_ready` instead. And a key's walk stops
/// at the most rows its first row's limits let start at once (its concurrency limit or its
/// rate, whichever is lower), rather than at its share of the claim: a worker reading ahead
/// asks for a thousand rows, which made every claim walk a thousand rows of a key with a
/// rate of 20 (0.3 s a claim, all of it inside the limited claims' turn). The rows of one key
/// carry one job type's limits; where they differ, a row past its key's first row's cap waits
/// for a later claim, as rows past a key's share do.
pub(super) fn claim_limited_pick(queues: usize) -> String {
    let listed = if queues == 0 {
        String::new()
    } else {
        let names: Vec<String> = (0..queues).map(|i| format!(":q{i}")).collect();
        format!(" AND queue IN ({})", names.join(", "))
    };
    let claimable = format!(
        "{ready} AND priority >= :min AND priority <= :max{listed} \
         AND NOT EXISTS (SELECT 1 FROM dj_paused_queues p WHERE p.queue = delayed_jobs.queue)",
        ready = clock!(ready),
    );
    format!(
        "WITH RECURSIVE lim AS ({lim}), \
         walk AS ( \
             SELECT concurrency_key AS k FROM delayed_jobs FORCE INDEX (delayed_jobs_key_heads) \
             WHERE concurrency_key > coalesce(:cursor, '') AND failed_at IS NULL \
             GROUP BY concurrency_key ORDER BY concurrency_key LIMIT :window), \
         wrap AS ( \
             SELECT concurrency_key AS k FROM delayed_jobs FORCE INDEX (delayed_jobs_key_heads) \
             WHERE concurrency_key > '' AND concurrency_key <= :cursor AND failed_at IS NULL \
             GROUP BY concurrency_key ORDER BY concurrency_key LIMIT :window), \
         walked AS ( \
             SELECT k FROM walk \
             UNION SELECT k FROM ( \
                 SELECT k, row_number() OVER (ORDER BY k) AS n FROM wrap) AS wrapped \
             WHERE wrapped.n <= :window - (SELECT count(*) FROM walk)), \
         per_key AS ( \
             SELECT GREATEST(1, (2 * :limit + count(*) - 1) DIV GREATEST(count(*), 1)) AS n FROM walked), \
         heads (k, id, priority, run_at, n, cap) AS ( \
             SELECT walked.k, h.id, h.priority, h.run_at, 1, \
                    LEAST(coalesce(nullif(h.concurrency_limit, 0), 1), \
                          coalesce(o.max_starts, h.rate_limit, {unbounded})) \
             FROM walked JOIN delayed_jobs h \
             ON h.id = (SELECT id FROM delayed_jobs \
                        WHERE concurrency_key = walked.k AND {claimable} AND {head} \
                        ORDER BY priority, run_at, id LIMIT 1) \
             LEFT JOIN dj_rate_limits o ON o.kind = 'key' AND o.name = walked.k \
             UNION ALL \
             SELECT heads.k, h.id, h.priority, h.run_at, heads.n + 1, heads.cap \
             FROM heads JOIN delayed_jobs h \
             ON h.id = (SELECT id FROM delayed_jobs FORCE INDEX (delayed_jobs_key_heads) \
                        WHERE concurrency_key = heads.k \
                          AND (priority > heads.priority OR (priority = heads.priority \
                              AND (run_at > heads.run_at OR (run_at = heads.run_at \
                                  AND id > heads.id)))) \
                          AND {claimable} AND {head} \
                        ORDER BY priority, run_at, id LIMIT 1) \
             WHERE heads.n < (SELECT n FROM per_key) AND heads.n < heads.cap), \
         cand AS ( \
             SELECT id, queue, concurrency_key AS ckey, {klim} AS klim, \
                    rate_limit AS row_rlim, rate_period_ms AS row_rper, \
                    priority, run_at FROM delayed_jobs \
             WHERE id IN (SELECT id FROM ( \
                     SELECT id FROM delayed_jobs \
                     WHERE {claimable} AND EXISTS (SELECT 1 FROM lim) \
                       AND queue IN (SELECT queue FROM lim) AND {head} \
                     ORDER BY priority, run_at LIMIT :window) AS in_limited) \
                OR id IN (SELECT id FROM heads)), \
         krun AS ( \
             SELECT concurrency_key AS ckey, count(*) AS n FROM delayed_jobs \
             WHERE concurrency_key IN (SELECT ckey FROM cand WHERE klim < {unbounded}) \
               AND {running} GROUP BY concurrency_key), \
         qrun AS ( \
             SELECT queue, count(*) AS n FROM delayed_jobs \
             WHERE queue IN (SELECT queue FROM lim WHERE max_running IS NOT NULL) \
               AND queue IN (SELECT queue FROM cand) AND {running} GROUP BY queue), \
         kstarted AS ( \
             SELECT substr(bucket, 5) AS ckey, count(*) AS n FROM dj_rate_starts \
             WHERE bucket IN (SELECT CONCAT('key:', ckey) FROM cand WHERE ckey IS NOT NULL) \
               AND `until` > {NOW} GROUP BY bucket), \
         qstarted AS ( \
             SELECT substr(bucket, 7) AS queue, count(*) AS n FROM dj_rate_starts \
             WHERE bucket IN (SELECT CONCAT('queue:', queue) FROM lim WHERE qrate IS NOT NULL) \
               AND `until` > {NOW} GROUP BY bucket), \
         {pick} \
         SELECT id FROM picked",
        lim = QUEUE_LIMITS_ROWS,
        running = running!(),
        pick = filter::limits_pick!(":limit"),
        klim = filter::key_limit!(),
        head = filter::sequence_head!(),
        unbounded = crate::model::UNBOUNDED_LIMIT,
    )
}

/// The starts with a rate of the rows `{ids}` a limited claim took, one row per bucket (its
/// key's, its queue's) until its claim time plus the rate's period.
pub(super) fn rate_record(ids: &str) -> String {
    format!(
        "INSERT INTO dj_rate_starts (bucket, `until`) \
         SELECT CONCAT('key:', j.concurrency_key), \
                j.locked_at + INTERVAL (coalesce(o.period_ms, j.rate_period_ms) * 1000) MICROSECOND \
         FROM delayed_jobs j LEFT JOIN dj_rate_limits o ON o.kind = 'key' AND o.name = j.concurrency_key \
         WHERE j.id IN ({ids}) AND coalesce(o.max_starts, j.rate_limit) IS NOT NULL \
         UNION ALL \
         SELECT CONCAT('queue:', j.queue), j.locked_at + INTERVAL (r.period_ms * 1000) MICROSECOND \
         FROM delayed_jobs j JOIN dj_rate_limits r ON r.kind = 'queue' AND r.name = j.queue \
         WHERE j.id IN ({ids})"
    )
}

/// When a rate's next start frees up, in seconds from now (see the PostgreSQL backend's).
pub(super) static RATE_REFILL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT TIMESTAMPDIFF(MICROSECOND, {NOW}, min(b.`until`)) / 1e6 FROM ( \
             SELECT bucket, min(`until`) AS `until` FROM dj_rate_starts \
             WHERE `until` > {NOW} GROUP BY bucket) AS b \
         WHERE (b.bucket LIKE 'key:%' AND EXISTS (SELECT 1 FROM delayed_jobs \
                    WHERE concurrency_key = substr(b.bucket, 5) AND {ready})) \
            OR (b.bucket LIKE 'queue:%' AND EXISTS (SELECT 1 FROM delayed_jobs \
                    WHERE queue = substr(b.bucket, 7) AND {ready}))",
        ready = clock!(ready),
    )
});

// ---- Outcomes: ids written into the text, the worker bound ----

/// `?` worker. Workflow steps are left for a delete of their own, with their finish.
pub(super) fn complete(ids: &str) -> String {
    format!(
        "DELETE FROM delayed_jobs WHERE id IN ({ids}) AND locked_by = ? AND workflow_id IS NULL"
    )
}

/// `?` worker: the workflow steps among rows `{ids}` that the worker holds, locked.
pub(super) fn held_steps(ids: &str) -> String {
    format!(
        "SELECT id FROM delayed_jobs \
         WHERE id IN ({ids}) AND locked_by = ? AND workflow_id IS NOT NULL FOR UPDATE"
    )
}

/// `?` id, `?` worker: the row's name and whether it is a workflow's step, locked, if the
/// worker holds it.
pub(super) const HELD_NAME: &str =
    "SELECT name, workflow_id IS NOT NULL AS step FROM delayed_jobs \
     WHERE id = ? AND locked_by = ? FOR UPDATE";

/// `?` id, `?` worker.
pub(super) const DELETE_HELD: &str = "DELETE FROM delayed_jobs WHERE id = ? AND locked_by = ?";

/// `?` id, `?` name, `?` state, `?` value (JSON text), `?` error: a job's outcome kept,
/// replacing an older one.
pub(super) static RESULT_KEEP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO dj_results (job_id, name, state, value, error, finished_at) \
         VALUES (?, ?, ?, ?, ?, {NOW}) {RESULT_REPLACES}"
    )
});

/// A job's result replaces the one kept before (a job that ran again).
const RESULT_REPLACES: &str = "ON DUPLICATE KEY UPDATE name = VALUES(name), \
     state = VALUES(state), value = VALUES(value), error = VALUES(error), \
     finished_at = VALUES(finished_at)";

// ---- Transactional completion (see `complete`): each read gives two integers, `a` and `b` ----

/// `?` worker: a row if it is registered, its registration locked for share until the
/// caller's transaction ends.
pub(super) const COMPLETE_WORKER: &str =
    "SELECT 1 AS a, 1 AS b FROM dj_workers WHERE name = ? LOCK IN SHARE MODE";

/// `?` id, `?` worker: the row, locked, if the worker holds it, and whether it is a step.
pub(super) const COMPLETE_HELD: &str = "SELECT id AS a, workflow_id IS NOT NULL AS b \
     FROM delayed_jobs WHERE id = ? AND locked_by = ? FOR UPDATE";

/// `?` value, `?` id, `?` worker: the held row's result kept, under its name.
pub(super) static COMPLETE_RESULT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO dj_results (job_id, name, state, value, error, finished_at) \
         SELECT id, name, 'succeeded', ?, NULL, {NOW} FROM delayed_jobs \
         WHERE id = ? AND locked_by = ? {RESULT_REPLACES}"
    )
});

/// `?` id.
pub(super) const RESULT_GET: &str = "SELECT state, value, error FROM dj_results WHERE job_id = ?";

/// `?` age in seconds, `?` most rows.
pub(super) const RESULT_PRUNE: &str = concat!(
    "DELETE FROM dj_results WHERE finished_at < ",
    "(UTC_TIMESTAMP(6) - INTERVAL ROUND(? * 1000000) MICROSECOND)",
    " ORDER BY finished_at LIMIT ?"
);

/// `?` id, `?` attempts, `?` snoozed, `?` error, `?` snoozed, `?` delay in seconds,
/// `?` release, `?` release, `?` id, `?` worker.
pub(super) const RETRY: &str = concat!(
    "UPDATE delayed_jobs SET attempts = ?, \
         last_error = CASE WHEN ? THEN last_error ELSE ? END, snoozes = snoozes + ?, \
         run_at = ",
    from_now!(),
    ", locked_at = CASE WHEN ? THEN NULL ELSE UTC_TIMESTAMP(6) END, \
         locked_by = CASE WHEN ? THEN NULL ELSE locked_by END, updated_at = UTC_TIMESTAMP(6) \
     WHERE id = ? AND locked_by = ?"
);

/// The failure kept, for rows that are (or are not) workflow steps.
macro_rules! fail_keep {
    ($steps:literal) => {
        concat!(
            "UPDATE delayed_jobs SET attempts = ?, last_error = ?, \
                 failed_at = UTC_TIMESTAMP(6), unique_key = NULL, locked_at = NULL, \
                 locked_by = NULL, updated_at = UTC_TIMESTAMP(6) \
             WHERE id = ? AND locked_by = ? AND ",
            $steps
        )
    };
}

/// `?` attempts, `?` error, `?` id, `?` worker.
pub(super) const FAIL_KEEP: &str = fail_keep!("workflow_id IS NULL");
/// [`FAIL_KEEP`] for a workflow's step, which its finish follows.
pub(super) const FAIL_KEEP_STEP: &str = fail_keep!("workflow_id IS NOT NULL");

/// A failed attempt recorded in the history, if worker `?` still holds job `?`: `?` job,
/// `?` attempt, `?` worker, `?` seconds it ran (NULL: from the recorded start), `?` again,
/// `?` error, `?` job, `?` worker.
pub(super) const ATTEMPT_RECORD: &str =
    "INSERT INTO dj_attempts (job_id, attempt, worker, started_at, finished_at, error) \
     SELECT ?, ?, ?, coalesce(CASE WHEN ? IS NULL THEN NULL \
                ELSE UTC_TIMESTAMP(6) - INTERVAL ROUND(? * 1000000) MICROSECOND END, \
                j.started_at, UTC_TIMESTAMP(6)), UTC_TIMESTAMP(6), ? \
     FROM delayed_jobs j WHERE j.id = ? AND j.locked_by = ? \
     ON DUPLICATE KEY UPDATE worker = VALUES(worker), started_at = VALUES(started_at), \
         finished_at = VALUES(finished_at), error = VALUES(error)";

/// `?` job, `?` its newest attempt: the attempts older than its latest `MAX_ATTEMPTS_KEPT`.
pub(super) static ATTEMPT_TRIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "DELETE FROM dj_attempts WHERE job_id = ? AND attempt <= ? - {}",
        crate::model::MAX_ATTEMPTS_KEPT
    )
});

/// `?` job: its recorded attempts, oldest first.
pub(super) const ATTEMPT_LIST: &str = concat!(
    "SELECT attempt, worker, ",
    secs!("started_at"),
    ", ",
    secs!("finished_at"),
    ", error FROM dj_attempts WHERE job_id = ? ORDER BY attempt"
);

/// `?` age in seconds, `?` most rows: attempts of jobs whose rows are gone.
pub(super) const ATTEMPT_PRUNE: &str = "DELETE FROM dj_attempts \
     WHERE finished_at < UTC_TIMESTAMP(6) - INTERVAL ROUND(? * 1000000) MICROSECOND \
       AND NOT EXISTS (SELECT 1 FROM delayed_jobs j WHERE j.id = dj_attempts.job_id) \
     ORDER BY finished_at LIMIT ?";

/// `?` id, `?` fraction, `?` message: a running job's latest progress.
pub(super) const PROGRESS_WRITE: &str =
    "INSERT INTO dj_progress (job_id, fraction, message, updated_at) \
     VALUES (?, ?, ?, UTC_TIMESTAMP(6)) \
     ON DUPLICATE KEY UPDATE fraction = VALUES(fraction), message = VALUES(message), \
         updated_at = VALUES(updated_at)";

pub(super) fn progress_clear(ids: &str) -> String {
    format!("DELETE FROM dj_progress WHERE job_id IN ({ids})")
}

pub(super) fn progress_of(ids: &str) -> String {
    format!(
        concat!(
            "SELECT job_id, fraction, message, ",
            secs!("updated_at"),
            " FROM dj_progress WHERE job_id IN ({ids})"
        ),
        ids = ids
    )
}

/// The progress of jobs whose rows are gone.
pub(super) const PROGRESS_PRUNE: &str = "DELETE FROM dj_progress \
     WHERE NOT EXISTS (SELECT 1 FROM delayed_jobs j WHERE j.id = dj_progress.job_id)";

/// `?` worker: those of `{ids}` it still holds.
pub(super) fn held(ids: &str) -> String {
    format!("SELECT id FROM delayed_jobs WHERE id IN ({ids}) AND locked_by = ?")
}

/// `?` worker.
pub(super) fn unlock(ids: &str) -> String {
    format!(
        "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL \
         WHERE id IN ({ids}) AND locked_by = ?"
    )
}

/// `?` worker.
pub(super) fn mark_started(ids: &str) -> String {
    format!(
        "UPDATE delayed_jobs SET started_at = {NOW} \
         WHERE id IN ({ids}) AND locked_by = ? AND started_at IS NULL"
    )
}

/// `?` worker.
pub(super) fn release_orphaned(ids: &str) -> String {
    format!(
        "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL, crashes = crashes + 1 \
         WHERE id IN ({ids}) AND locked_by = ?"
    )
}

/// `?` worker.
pub(super) const UNLOCK_WORKER: &str =
    "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL WHERE locked_by = ?";

// ---- Reads for operators ----

/// Per queue: ready, scheduled, running, failed, and the oldest ready row's age in seconds.
pub(super) static STATS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT queue, \
           CAST(coalesce(sum({ready}), 0) AS SIGNED), \
           CAST(coalesce(sum({scheduled}), 0) AS SIGNED), \
           CAST(coalesce(sum({running}), 0) AS SIGNED), \
           CAST(coalesce(sum({failed}), 0) AS SIGNED), \
           {now} - min(CASE WHEN {ready} THEN {run_at} END) \
         FROM delayed_jobs GROUP BY queue ORDER BY queue",
        ready = clock!(ready),
        scheduled = clock!(scheduled),
        running = running!(),
        failed = failed!(),
        now = secs!("UTC_TIMESTAMP(6)"),
        run_at = secs!("run_at"),
    )
});

/// `?` older than (seconds), `?` at most this many rows.
pub(super) const PRUNE_FAILED: &str = concat!(
    "DELETE FROM delayed_jobs WHERE ",
    failed!(),
    " AND failed_at < UTC_TIMESTAMP(6) - INTERVAL ROUND(? * 1000000) MICROSECOND \
     ORDER BY failed_at LIMIT ?"
);

// ---- Workers ----

/// `?` name, `?` host, `?` pid, `?` queues, `?` version.
pub(super) const WORKER_REGISTER: &str =
    "INSERT INTO dj_workers (name, host, pid, queues, version, started_at, heartbeat_at) \
     VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) \
     ON DUPLICATE KEY UPDATE host = VALUES(host), pid = VALUES(pid), queues = VALUES(queues), \
         version = VALUES(version), started_at = VALUES(started_at), \
         heartbeat_at = VALUES(heartbeat_at), running = 0";

/// `?` running, `?` name.
pub(super) const WORKER_HEARTBEAT: &str =
    "UPDATE dj_workers SET heartbeat_at = UTC_TIMESTAMP(6), running = ? WHERE name = ?";

/// `?` name, `?` stale after (seconds) or null for any, `?` the same.
pub(super) const WORKER_REMOVE: &str = "DELETE FROM dj_workers WHERE name = ? AND (? IS NULL OR \
         heartbeat_at < UTC_TIMESTAMP(6) - INTERVAL ROUND(? * 1000000) MICROSECOND)";

pub(super) static WORKER_LIST: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {WORKER_COLUMNS} FROM dj_workers ORDER BY name"));

/// `?` worker, `?` task, `?` every (seconds).
pub(super) const MAINTENANCE_CLAIM: &str =
    "UPDATE dj_maintenance SET ran_at = UTC_TIMESTAMP(6), ran_by = ? \
     WHERE task = ? AND ran_at <= UTC_TIMESTAMP(6) - INTERVAL ROUND(? * 1000000) MICROSECOND";

// ---- Queues ----

/// Priority aging: `?` seconds a job has been ready, `?` the same, `?` how many at most.
/// MySQL cannot update a table its subquery reads, so the rows are chosen in a derived table.
pub(super) static AGE: LazyLock<String> = LazyLock::new(|| {
    let waited = "UTC_TIMESTAMP(6) - INTERVAL ROUND(? * 1000000) MICROSECOND";
    format!(
        "UPDATE delayed_jobs SET priority = priority - 1, updated_at = {NOW} \
         WHERE id IN (SELECT id FROM ( \
             SELECT id FROM delayed_jobs \
             WHERE {waiting} AND run_at <= {waited} \
               AND priority = ( \
                   SELECT max(priority) FROM delayed_jobs \
                   WHERE {waiting} AND run_at <= {waited} \
                     AND priority > (SELECT min(priority) FROM delayed_jobs WHERE {ready})) \
             ORDER BY run_at LIMIT ?) AS aged)",
        waiting = filter::waiting!(),
        ready = clock!(ready),
    )
});

/// `?` queue.
pub(super) const QUEUE_RESUME: &str = "DELETE FROM dj_paused_queues WHERE queue = ?";
/// `?` queue.
pub(super) const QUEUE_PAUSE: &str = "INSERT IGNORE INTO dj_paused_queues (queue) VALUES (?)";
pub(super) const QUEUE_PAUSED: &str = "SELECT queue FROM dj_paused_queues ORDER BY queue";

/// `?` queue, `?` max running: changes a row only when the limit differs (the count of
/// changed rows says whether anything changed).
pub(super) const QUEUE_LIMIT_SET: &str =
    "INSERT INTO dj_queue_limits (queue, max_running) VALUES (?, ?) \
     ON DUPLICATE KEY UPDATE set_at = IF(max_running <> VALUES(max_running), UTC_TIMESTAMP(6), set_at), \
         max_running = VALUES(max_running)";
/// `?` queue.
pub(super) const QUEUE_LIMIT_REMOVE: &str = "DELETE FROM dj_queue_limits WHERE queue = ?";
pub(super) const QUEUE_LIMITS: &str =
    "SELECT queue, max_running FROM dj_queue_limits ORDER BY queue";

/// `?` kind, `?` name, `?` starts, `?` period in ms.
pub(super) const RATE_LIMIT_SET: &str =
    "INSERT INTO dj_rate_limits (kind, name, max_starts, period_ms) VALUES (?, ?, ?, ?) \
     ON DUPLICATE KEY UPDATE \
         set_at = IF(max_starts <> VALUES(max_starts) OR period_ms <> VALUES(period_ms), \
                     UTC_TIMESTAMP(6), set_at), \
         max_starts = VALUES(max_starts), period_ms = VALUES(period_ms)";
/// `?` kind, `?` name.
pub(super) const RATE_LIMIT_REMOVE: &str = "DELETE FROM dj_rate_limits WHERE kind = ? AND name = ?";
pub(super) const RATE_LIMITS: &str =
    "SELECT kind, name, max_starts, period_ms FROM dj_rate_limits ORDER BY kind DESC, name";
/// The rate limits' starts that no longer count.
pub(super) const RATE_PRUNE: &str = "DELETE FROM dj_rate_starts WHERE `until` <= UTC_TIMESTAMP(6)";

// ---- Cancels ----

/// `?` id: whether the live row is running (none: no such live row), locked.
pub(super) const CANCEL_RUNNING: &str = "SELECT locked_at IS NOT NULL, workflow_id IS NOT NULL \
     FROM delayed_jobs WHERE id = ? AND failed_at IS NULL FOR UPDATE";
/// `?` id.
pub(super) const CANCEL_REQUEST: &str = "INSERT IGNORE INTO dj_cancels (job_id) VALUES (?)";
/// `?` id.
pub(super) const CANCEL_DEQUEUE: &str =
    "UPDATE delayed_jobs SET failed_at = UTC_TIMESTAMP(6), last_error = 'cancelled', \
         unique_key = NULL, updated_at = UTC_TIMESTAMP(6) WHERE id = ?";
pub(super) fn cancel_requested(ids: &str) -> String {
    format!("SELECT job_id FROM dj_cancels WHERE job_id IN ({ids})")
}
pub(super) const CANCEL_PRUNE: &str = "DELETE FROM dj_cancels WHERE NOT EXISTS ( \
         SELECT 1 FROM delayed_jobs j WHERE j.id = dj_cancels.job_id AND j.locked_at IS NOT NULL)";

// ---- Throughput ----

/// `?` succeeded, `?` failed.
pub(super) const THROUGHPUT_ADD: &str = "INSERT INTO dj_throughput (minute, succeeded, failed) \
     VALUES (DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:00'), ?, ?) \
     ON DUPLICATE KEY UPDATE succeeded = succeeded + VALUES(succeeded), \
         failed = failed + VALUES(failed)";
pub(super) const THROUGHPUT_TRIM: &str =
    "DELETE FROM dj_throughput WHERE minute < UTC_TIMESTAMP(6) - INTERVAL 1 DAY";
/// `?` minutes.
pub(super) const THROUGHPUT: &str = concat!(
    "SELECT ",
    secs!("minute"),
    ", succeeded, failed FROM dj_throughput \
     WHERE minute > UTC_TIMESTAMP(6) - INTERVAL ? MINUTE ORDER BY minute"
);

// ---- Schedules ----

/// `?` x9 the definition's columns, `?` the next fire time (unix seconds). The next fire
/// time is kept while the expression and zone are unchanged.
pub(super) const CRON_UPSERT: &str =
    "INSERT INTO dj_cron (name, expression, tz, missed, job_name, handler, queue, \
                          priority, from_code, next_fire_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, FROM_UNIXTIME(?)) \
     ON DUPLICATE KEY UPDATE \
         updated_at = IF(NOT (expression <=> VALUES(expression) AND tz <=> VALUES(tz) \
                              AND missed <=> VALUES(missed) AND job_name <=> VALUES(job_name) \
                              AND handler <=> VALUES(handler) AND queue <=> VALUES(queue) \
                              AND priority <=> VALUES(priority) \
                              AND from_code <=> VALUES(from_code)), \
                         UTC_TIMESTAMP(6), updated_at), \
         next_fire_at = IF(expression <=> VALUES(expression) AND tz <=> VALUES(tz), \
                           next_fire_at, VALUES(next_fire_at)), \
         expression = VALUES(expression), tz = VALUES(tz), missed = VALUES(missed), \
         job_name = VALUES(job_name), handler = VALUES(handler), queue = VALUES(queue), \
         priority = VALUES(priority), from_code = VALUES(from_code)";
/// `?` name.
pub(super) const CRON_REMOVE: &str = "DELETE FROM dj_cron WHERE name = ?";
pub(super) static CRON_LIST: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {CRON_COLUMNS} FROM dj_cron ORDER BY name"));
/// `?` now (unix seconds).
pub(super) static CRON_DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {CRON_COLUMNS} FROM dj_cron \
         WHERE next_fire_at IS NOT NULL AND next_fire_at <= FROM_UNIXTIME(?) ORDER BY name"
    )
});
/// The compare-and-set of a firing: `?` the new next fire time, `?` the last fire time
/// enqueued (unix seconds), `?` name, `?` the next fire time read (to the millisecond: a
/// time read back as a double may be a microsecond off).
pub(super) const CRON_MOVE: &str = "UPDATE dj_cron SET next_fire_at = FROM_UNIXTIME(?), \
         last_fire_at = coalesce(FROM_UNIXTIME(?), last_fire_at), updated_at = UTC_TIMESTAMP(6) \
     WHERE name = ? AND ABS(TIMESTAMPDIFF(MICROSECOND, next_fire_at, FROM_UNIXTIME(?))) < 1000";
