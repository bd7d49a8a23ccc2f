//! The PostgreSQL backend's SQL text: every fixed statement, with its parameter types where
//! it has parameters. The claims are in [`claim`], the inserts in [`insert`]; the filtered
//! commands are built by [`crate::store::filter`] in [`DIALECT`].

use std::sync::LazyLock;

use tokio_postgres::types::Type;

use crate::store::filter::{self, failed, ready, running, scheduled, waiting};

pub(crate) mod claim;
pub(crate) mod insert;

/// A fixed statement and its parameter types (prepared once per connection, or sent
/// unnamed with these types behind a transaction pooler).
pub(crate) struct Stmt {
    pub(crate) sql: &'static str,
    pub(crate) types: &'static [Type],
}

/// PostgreSQL's spelling of the filtered commands.
pub(crate) const DIALECT: filter::Dialect = filter::Dialect {
    now: "now()",
    placeholder: |n| format!("${n}"),
    position: "strpos",
    positional: false,
};

pub(crate) const COLUMNS: &str = "id, priority, attempts, handler, last_error, run_at, locked_at, failed_at, \
                       locked_by, queue, created_at, updated_at, name, max_run_time, started_at, crashes, \
                       snoozes, unique_key, concurrency_key";

pub(crate) const CHANNEL: &str = "delayed_jobs";

/// A stored schedule's columns.
macro_rules! cron_columns {
    () => {
        "name, expression, tz, missed, job_name, handler, queue, priority, from_code, \
         last_fire_at, next_fire_at"
    };
}

/// The schedules whose next fire time has come.
pub(crate) const CRON_DUE: &str = concat!(
    "SELECT ",
    cron_columns!(),
    " FROM dj_cron WHERE next_fire_at <= now() ORDER BY name"
);

pub(crate) const COMPLETE: &str = "DELETE FROM delayed_jobs WHERE id = ANY($1) AND locked_by = $2";

/// A failed attempt's reschedule, or a snooze (attempts and last_error as they were).
pub(crate) const RETRY: &str = "UPDATE delayed_jobs AS j \
     SET attempts = t.attempts, last_error = CASE WHEN t.snoozed THEN j.last_error ELSE t.err END, \
         snoozes = j.snoozes + t.snoozed::int, run_at = now() + t.delay * interval '1 second', \
         locked_at = CASE WHEN t.release THEN NULL ELSE now() END, \
         locked_by = CASE WHEN t.release THEN NULL ELSE j.locked_by END, updated_at = now() \
     FROM unnest($1::int8[], $2::int4[], $3::float8[], $4::text[], $5::bool[], $7::bool[]) \
          AS t(id, attempts, delay, err, release, snoozed) \
     WHERE j.id = t.id AND j.locked_by = $6";

/// A permanent failure, kept: a unique job's key is freed. An app awaiting the job's result
/// is woken.
pub(crate) const FAIL_KEEP: &str = "UPDATE delayed_jobs AS j \
     SET attempts = t.attempts, last_error = t.err, failed_at = now(), unique_key = NULL, \
         locked_at = NULL, locked_by = NULL, updated_at = now() \
     FROM unnest($1::int8[], $2::int4[], $3::text[]) AS t(id, attempts, err) \
     WHERE j.id = t.id AND j.locked_by = $4 \
     RETURNING pg_notify('dj_results', j.id::text)";

/// The channel on which a job's stored result or failure for good is announced, with the
/// job's id as the payload: an app awaiting a result LISTENs on it.
pub(crate) const RESULTS_CHANNEL: &str = "dj_results";

/// Deletes rows `$1` (those of them `$where` allows: the worker still holds them) and keeps
/// an outcome for each in `dj_results`, replacing an older one: `$out` (of `$values`, text per
/// id) in `$column`, with `$other` cleared. Waiters are told with one NOTIFY per 300 ids
/// (each id is at most 20 bytes: a payload stays under the 8,000 allowed), not one per row.
macro_rules! keep_results {
    ($where:literal, $values:literal, $state:literal, $column:literal, $out:literal, $other:literal) => {
        concat!(
            "WITH done AS ( \
                 DELETE FROM delayed_jobs WHERE id = ANY($1) AND ",
            $where,
            " RETURNING id, name), \
             kept AS ( \
                 INSERT INTO dj_results AS r (job_id, name, state, ",
            $column,
            ") SELECT d.id, d.name, '",
            $state,
            "', ",
            $out,
            " FROM done d JOIN unnest($1::int8[], ",
            $values,
            "::text[]) AS v(id, out) ON v.id = d.id \
                 ON CONFLICT (job_id) DO UPDATE SET name = excluded.name, state = excluded.state, ",
            $column,
            " = excluded.",
            $column,
            ", ",
            $other,
            " = NULL, finished_at = excluded.finished_at \
                 RETURNING r.job_id) \
             SELECT pg_notify('dj_results', string_agg(job_id::text, ',')) \
             FROM (SELECT job_id, (row_number() OVER ()) / 300 AS part FROM kept) AS k \
             GROUP BY part"
        )
    };
}

/// Finished jobs `$1` of worker `$2` deleted, the values `$3` (JSON text) they recorded kept.
pub(crate) const COMPLETE_RECORDED: Stmt = Stmt {
    sql: keep_results!(
        "locked_by = $2",
        "$3",
        "succeeded",
        "value",
        "v.out::jsonb",
        "error"
    ),
    types: &[Type::INT8_ARRAY, Type::TEXT, Type::TEXT_ARRAY],
};

/// Jobs `$1` of worker `$2` failed for good and deleted (`destroy_failed_jobs`), their last
/// errors `$3` kept.
pub(crate) const FAIL_DESTROY: Stmt = Stmt {
    sql: keep_results!("locked_by = $2", "$3", "failed", "error", "v.out", "value"),
    types: &[Type::INT8_ARRAY, Type::TEXT, Type::TEXT_ARRAY],
};

/// A lane's finished jobs `$1` that recorded values `$2`, deleted in the lane's transaction
/// (which holds their locks) and their values kept.
pub(crate) const LANE_COMPLETE_RECORDED: Stmt = Stmt {
    sql: keep_results!("true", "$2", "succeeded", "value", "v.out::jsonb", "error"),
    types: &[Type::INT8_ARRAY, Type::TEXT_ARRAY],
};

/// After a lane's end failed: its finished jobs `$1` that recorded values `$2`, deleted and
/// their values kept unless another worker claimed one since (see `LANE_ABANDONED`; `$3` the
/// worker).
pub(crate) const LANE_ABANDONED_RECORDED: Stmt = Stmt {
    sql: keep_results!(
        "(locked_at IS NULL OR locked_by = $3) AND failed_at IS NULL",
        "$2",
        "succeeded",
        "value",
        "v.out::jsonb",
        "error"
    ),
    types: &[Type::INT8_ARRAY, Type::TEXT_ARRAY, Type::TEXT],
};

/// Of the jobs `$1`, those worker `$2` still holds.
pub(crate) const HELD: Stmt = Stmt {
    sql: "SELECT id FROM delayed_jobs WHERE id = ANY($1) AND locked_by = $2",
    types: BY_WORKER,
};

/// Job `$1`'s stored result.
pub(crate) const RESULT_GET: Stmt = Stmt {
    sql: "SELECT state, value::text, error FROM dj_results WHERE job_id = $1",
    types: &[Type::INT8],
};

/// Failed attempts recorded in the history, for the rows worker `$5` still holds: `$1` ids,
/// `$2` attempt numbers, `$3` errors, `$4` how long each ran in seconds (NULL: from the
/// recorded start). A job's attempts older than its latest `MAX_ATTEMPTS_KEPT` go.
pub(crate) static ATTEMPT_RECORD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH t AS (SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[], $4::float8[]) \
                    AS t(id, attempt, err, ran_for)), \
              old AS (DELETE FROM dj_attempts a USING t \
                      WHERE a.job_id = t.id AND a.attempt <= t.attempt - {kept}) \
         INSERT INTO dj_attempts AS a (job_id, attempt, worker, started_at, error) \
         SELECT t.id, t.attempt, $5, \
                COALESCE(now() - t.ran_for * interval '1 second', j.started_at, now()), t.err \
         FROM t JOIN delayed_jobs j ON j.id = t.id AND j.locked_by = $5 \
         ON CONFLICT (job_id, attempt) DO UPDATE SET worker = excluded.worker, \
             started_at = excluded.started_at, finished_at = excluded.finished_at, \
             error = excluded.error",
        kept = crate::model::MAX_ATTEMPTS_KEPT
    )
});

/// [`ATTEMPT_RECORD`]'s parameter types.
pub(crate) const ATTEMPT_RECORD_TYPES: &[Type] = &[
    Type::INT8_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::FLOAT8_ARRAY,
    Type::TEXT,
];

/// The latest progress of running jobs: `$1` ids, `$2` fractions, `$3` messages.
pub(crate) const PROGRESS_WRITE: Stmt = Stmt {
    sql: "INSERT INTO dj_progress AS p (job_id, fraction, message) \
          SELECT * FROM unnest($1::int8[], $2::float8[], $3::text[]) \
          ON CONFLICT (job_id) DO UPDATE SET fraction = excluded.fraction, \
              message = excluded.message, updated_at = now()",
    types: &[Type::INT8_ARRAY, Type::FLOAT8_ARRAY, Type::TEXT_ARRAY],
};

/// The progress of jobs `$1`, which ended.
pub(crate) const PROGRESS_CLEAR: Stmt = Stmt {
    sql: "DELETE FROM dj_progress WHERE job_id = ANY($1)",
    types: &[Type::INT8_ARRAY],
};

/// The progress of those of jobs `$1` that reported some.
pub(crate) const PROGRESS_OF: Stmt = Stmt {
    sql: "SELECT job_id, fraction, message, updated_at FROM dj_progress WHERE job_id = ANY($1)",
    types: &[Type::INT8_ARRAY],
};

/// The progress of jobs whose rows are gone.
pub(crate) const PROGRESS_PRUNE: Stmt = Stmt {
    sql: "DELETE FROM dj_progress p \
          WHERE NOT EXISTS (SELECT 1 FROM delayed_jobs j WHERE j.id = p.job_id)",
    types: &[],
};

/// Job `$1`'s recorded attempts, oldest first.
pub(crate) const ATTEMPT_LIST: Stmt = Stmt {
    sql: "SELECT attempt, worker, started_at, finished_at, error FROM dj_attempts \
          WHERE job_id = $1 ORDER BY attempt",
    types: &[Type::INT8],
};

/// Up to `$2` attempts of jobs whose rows are gone, recorded more than `$1` seconds ago.
pub(crate) const ATTEMPT_PRUNE: Stmt = Stmt {
    sql: "WITH old AS ( \
              SELECT job_id, attempt FROM dj_attempts a \
              WHERE finished_at < now() - $1 * interval '1 second' \
                AND NOT EXISTS (SELECT 1 FROM delayed_jobs j WHERE j.id = a.job_id) \
              ORDER BY finished_at LIMIT $2) \
          DELETE FROM dj_attempts AS a USING old \
          WHERE a.job_id = old.job_id AND a.attempt = old.attempt",
    types: &[Type::FLOAT8, Type::INT8],
};

/// Up to `$2` results stored more than `$1` seconds ago, deleted.
pub(crate) const RESULT_PRUNE: Stmt = Stmt {
    sql: "WITH old AS ( \
              SELECT job_id FROM dj_results \
              WHERE finished_at < now() - $1 * interval '1 second' \
              ORDER BY finished_at LIMIT $2) \
          DELETE FROM dj_results AS r USING old WHERE r.job_id = old.job_id",
    types: &[Type::FLOAT8, Type::INT8],
};

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
pub(crate) use waking;

pub(crate) const UNLOCK: &str = waking!(
    "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL \
     WHERE id = ANY($1) AND locked_by = $2"
);

pub(crate) const MARK_STARTED: &str = "UPDATE delayed_jobs SET started_at = now() \
     WHERE id = ANY($1) AND locked_by = $2 AND started_at IS NULL";

pub(crate) const RELEASE_ORPHANED: &str = waking!(
    "UPDATE delayed_jobs \
     SET locked_at = NULL, locked_by = NULL, crashes = crashes + 1 \
     WHERE id = ANY($1) AND locked_by = $2"
);

/// Cancels job `$1`: a waiting row fails for good as "cancelled" (its unique key freed); a
/// running one gets a request in `dj_cancels`. Returns (dequeued, requested) counts.
pub(crate) const CANCEL: &str = "WITH target AS ( \
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
pub(crate) const CANCEL_PRUNE: &str = "DELETE FROM dj_cancels c WHERE NOT EXISTS ( \
     SELECT 1 FROM delayed_jobs j WHERE j.id = c.job_id AND j.locked_at IS NOT NULL)";

/// Up to `$2` rows failed for good more than `$1` seconds ago, oldest first.
pub(crate) const PRUNE_FAILED: &str = concat!(
    "WITH old AS ( \
         SELECT id FROM delayed_jobs \
         WHERE ",
    failed!(),
    " AND failed_at < now() - $1 * interval '1 second' \
         ORDER BY failed_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
     DELETE FROM delayed_jobs AS j USING old WHERE j.id = old.id"
);

/// Per queue: ready, scheduled, running and failed counts, and the oldest ready row's age.
pub(crate) const JOB_STATS: &str = concat!(
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

pub(crate) const WORKER_COLUMNS: &str =
    "name, host, pid, queues, version, started_at, heartbeat_at, running";

/// The rows a worker holds, by id (`$1`) and worker (`$2`): the types of [`COMPLETE`],
/// [`UNLOCK`], [`MARK_STARTED`] and [`RELEASE_ORPHANED`].
pub(crate) const BY_WORKER: &[Type] = &[Type::INT8_ARRAY, Type::TEXT];

/// [`RETRY`]'s parameter types.
pub(crate) const RETRY_TYPES: &[Type] = &[
    Type::INT8_ARRAY,
    Type::INT4_ARRAY,
    Type::FLOAT8_ARRAY,
    Type::TEXT_ARRAY,
    Type::BOOL_ARRAY,
    Type::TEXT,
    Type::BOOL_ARRAY,
];

/// [`FAIL_KEEP`]'s parameter types.
pub(crate) const FAIL_KEEP_TYPES: &[Type] = &[
    Type::INT8_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::TEXT,
];

/// Every lock one worker name holds, released.
pub(crate) const UNLOCK_WORKER: Stmt = Stmt {
    sql: waking!(
        "UPDATE delayed_jobs SET locked_at = NULL, locked_by = NULL \
         WHERE locked_by = $1"
    ),
    types: &[Type::TEXT],
};

pub(crate) const NOW: Stmt = Stmt {
    sql: "SELECT now()",
    types: &[],
};

pub(crate) const STATS: Stmt = Stmt {
    sql: JOB_STATS,
    types: &[],
};

/// Priority aging (`$1`: seconds a job has been ready, `$2`: how many at most): of the worst
/// priority that has such jobs behind a better ready one, the longest waiting get one step
/// better. Each read walks `delayed_jobs_ready` (`priority, run_at`) in order: the best
/// ready priority from its start, the worst eligible one from its end, and that priority's
/// rows by run_at.
pub(crate) const AGE: Stmt = Stmt {
    sql: concat!(
        "UPDATE delayed_jobs SET priority = priority - 1, updated_at = now() \
         WHERE id = ANY (ARRAY( \
             SELECT id FROM delayed_jobs \
             WHERE ",
        waiting!(),
        " AND run_at <= now() - $1 * interval '1 second' \
               AND priority = ( \
                   SELECT max(priority) FROM delayed_jobs \
                   WHERE ",
        waiting!(),
        " AND run_at <= now() - $1 * interval '1 second' \
                     AND priority > (SELECT min(priority) FROM delayed_jobs WHERE ",
        ready!("now()"),
        ")) \
             ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED)) \
           AND locked_at IS NULL AND failed_at IS NULL"
    ),
    types: &[Type::FLOAT8, Type::INT8],
};

pub(crate) const PRUNE: Stmt = Stmt {
    sql: PRUNE_FAILED,
    types: &[Type::FLOAT8, Type::INT8],
};

pub(crate) const CANCEL_ONE: Stmt = Stmt {
    sql: CANCEL,
    types: &[Type::INT8],
};

pub(crate) const CANCELS_PRUNE: Stmt = Stmt {
    sql: CANCEL_PRUNE,
    types: &[],
};

pub(crate) const CANCEL_REQUESTED: Stmt = Stmt {
    sql: "SELECT job_id FROM dj_cancels WHERE job_id = ANY($1)",
    types: &[Type::INT8_ARRAY],
};

pub(crate) const WORKER_REGISTER: Stmt = Stmt {
    sql: "INSERT INTO dj_workers (name, host, pid, queues, version) \
          VALUES ($1, $2, $3, $4, $5) \
          ON CONFLICT (name) DO UPDATE SET host = $2, pid = $3, queues = $4, version = $5, \
              started_at = now(), heartbeat_at = now(), running = 0",
    types: &[Type::TEXT, Type::TEXT, Type::INT4, Type::TEXT, Type::TEXT],
};

pub(crate) const WORKER_HEARTBEAT: Stmt = Stmt {
    sql: "UPDATE dj_workers SET heartbeat_at = now(), running = $2 WHERE name = $1",
    types: &[Type::TEXT, Type::INT4],
};

/// A worker's entry removed; with `$2`, only if its heartbeat is older than that many seconds.
pub(crate) const WORKER_REMOVE: Stmt = Stmt {
    sql: "DELETE FROM dj_workers WHERE name = $1 \
          AND ($2::float8 IS NULL OR heartbeat_at < now() - $2 * interval '1 second')",
    types: &[Type::TEXT, Type::FLOAT8],
};

pub(crate) const WORKER_LIST: Stmt = Stmt {
    sql: concat!(
        "SELECT name, host, pid, queues, version, started_at, heartbeat_at, running ",
        "FROM dj_workers ORDER BY name"
    ),
    types: &[],
};

pub(crate) const QUEUE_PAUSE: Stmt = Stmt {
    sql: "INSERT INTO dj_paused_queues (queue) VALUES ($1) ON CONFLICT DO NOTHING",
    types: &[Type::TEXT],
};

pub(crate) const QUEUE_RESUME: Stmt = Stmt {
    sql: "DELETE FROM dj_paused_queues WHERE queue = $1",
    types: &[Type::TEXT],
};

pub(crate) const QUEUES_PAUSED: Stmt = Stmt {
    sql: "SELECT queue FROM dj_paused_queues ORDER BY queue",
    types: &[],
};

/// A queue's limit set; nothing changes when it is already that.
pub(crate) const QUEUE_LIMIT_SET: Stmt = Stmt {
    sql: "INSERT INTO dj_queue_limits (queue, max_running) VALUES ($1, $2) \
          ON CONFLICT (queue) DO UPDATE SET max_running = EXCLUDED.max_running, set_at = now() \
          WHERE dj_queue_limits.max_running <> EXCLUDED.max_running",
    types: &[Type::TEXT, Type::INT4],
};

pub(crate) const QUEUE_LIMIT_REMOVE: Stmt = Stmt {
    sql: "DELETE FROM dj_queue_limits WHERE queue = $1",
    types: &[Type::TEXT],
};

pub(crate) const QUEUE_LIMITS: Stmt = Stmt {
    sql: "SELECT queue, max_running FROM dj_queue_limits ORDER BY queue",
    types: &[],
};

/// A rate limit set at run time: kind, name, starts, period in ms.
pub(crate) const RATE_LIMIT_SET: Stmt = Stmt {
    sql: "INSERT INTO dj_rate_limits (kind, name, max_starts, period_ms) VALUES ($1, $2, $3, $4) \
          ON CONFLICT (kind, name) DO UPDATE SET max_starts = EXCLUDED.max_starts, \
              period_ms = EXCLUDED.period_ms, set_at = now() \
          WHERE (dj_rate_limits.max_starts, dj_rate_limits.period_ms) \
                <> (EXCLUDED.max_starts, EXCLUDED.period_ms)",
    types: &[Type::TEXT, Type::TEXT, Type::INT4, Type::INT4],
};

pub(crate) const RATE_LIMIT_REMOVE: Stmt = Stmt {
    sql: "DELETE FROM dj_rate_limits WHERE kind = $1 AND name = $2",
    types: &[Type::TEXT, Type::TEXT],
};

pub(crate) const RATE_LIMITS: Stmt = Stmt {
    sql: "SELECT kind, name, max_starts, period_ms FROM dj_rate_limits \
          ORDER BY kind DESC, name",
    types: &[],
};

/// The rate limits' starts that no longer count.
pub(crate) const RATE_PRUNE: Stmt = Stmt {
    sql: "DELETE FROM dj_rate_starts WHERE until <= now()",
    types: &[],
};

/// Jobs finished, added to the current minute's counts.
pub(crate) const THROUGHPUT_ADD: Stmt = Stmt {
    sql: "INSERT INTO dj_throughput AS t (minute, succeeded, failed) \
          VALUES (date_trunc('minute', now()), $1, $2) \
          ON CONFLICT (minute) DO UPDATE SET succeeded = t.succeeded + EXCLUDED.succeeded, \
              failed = t.failed + EXCLUDED.failed",
    types: &[Type::INT8, Type::INT8],
};

pub(crate) const THROUGHPUT_TRIM: Stmt = Stmt {
    sql: "DELETE FROM dj_throughput WHERE minute < now() - interval '1 day'",
    types: &[],
};

pub(crate) const THROUGHPUT: Stmt = Stmt {
    sql: "SELECT minute, succeeded, failed FROM dj_throughput \
          WHERE minute > now() - $1 * interval '1 minute' ORDER BY minute",
    types: &[Type::FLOAT8],
};

/// A schedule added, or its definition updated (its next fire time only if the expression or
/// zone changed); nothing is written when nothing changed.
pub(crate) const CRON_UPSERT: Stmt = Stmt {
    sql: "INSERT INTO dj_cron AS c (name, expression, tz, missed, job_name, handler, queue, \
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
    types: &[
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
};

pub(crate) const CRON_REMOVE: Stmt = Stmt {
    sql: "DELETE FROM dj_cron WHERE name = $1",
    types: &[Type::TEXT],
};

pub(crate) const CRON_LIST: Stmt = Stmt {
    sql: concat!("SELECT ", cron_columns!(), " FROM dj_cron ORDER BY name"),
    types: &[],
};

/// A schedule's fire: its next fire time moved from `$2` to `$3` (compare-and-set), sent
/// unnamed in the fire's transaction.
pub(crate) const CRON_MOVE: Stmt = Stmt {
    sql: "UPDATE dj_cron SET next_fire_at = $3, \
              last_fire_at = coalesce($4, last_fire_at), updated_at = now() \
          WHERE name = $1 AND next_fire_at = $2",
    types: &[
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
    ],
};

/// A maintenance pass of `$1` won by `$2` if none ran in the last `$3` seconds.
pub(crate) const MAINTENANCE_CLAIM: Stmt = Stmt {
    sql: "UPDATE dj_maintenance SET ran_at = now(), ran_by = $2 \
          WHERE task = $1 AND ran_at <= now() - $3 * interval '1 second'",
    types: &[Type::TEXT, Type::TEXT, Type::FLOAT8],
};

/// The first statement of `migrate`'s transaction: `IF NOT EXISTS` and `DROP ... IF EXISTS`
/// answer with NOTICEs ("relation ... already exists, skipping"), which the driver would log
/// as INFO lines.
pub(crate) const MIGRATE_QUIET: &str = "SET LOCAL client_min_messages = warning";
/// One `migrate` at a time.
pub(crate) const MIGRATE_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('dj: migrate'))";
pub(crate) const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS dj_schema_migrations ( \
     version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())";
pub(crate) const MIGRATIONS_DONE: &str = "SELECT version FROM dj_schema_migrations";
pub(crate) const MIGRATION_APPLIED: &str = "INSERT INTO dj_schema_migrations (version) VALUES ($1)";

/// Reads no rows but names every column dj uses: fails if one is missing.
pub(crate) fn check_schema() -> String {
    format!(
        "SELECT {COLUMNS} FROM delayed_jobs LIMIT 0; \
         SELECT {WORKER_COLUMNS} FROM dj_workers LIMIT 0; \
         SELECT task, ran_at, ran_by FROM dj_maintenance LIMIT 0; \
         SELECT queue, paused_at FROM dj_paused_queues LIMIT 0; \
         SELECT queue, max_running FROM dj_queue_limits LIMIT 0; \
         SELECT job_id, requested_at FROM dj_cancels LIMIT 0; \
         SELECT {} FROM dj_cron LIMIT 0; \
         SELECT minute, succeeded, failed FROM dj_throughput LIMIT 0",
        cron_columns!()
    )
}
