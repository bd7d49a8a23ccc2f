//! The claim statements: the plain claims (every queue, listed queues) and the limited
//! claim (queue limits, concurrency keys and rate limits), with the pieces they share.

use crate::store::filter::{key_limit, limits_pick, queue_limits, ready, running, sequence_head};

/// The queues no plain claim takes from: paused ones, and limited or rate-limited ones (the
/// limited claim's).
/// An array built once per statement (an InitPlan), so that the claims filter on it instead of
/// joining the side tables: an anti-join against a never-analyzed (empty) side table made the
/// planner estimate one row and choose a sequential scan and a sort of the whole backlog.
macro_rules! excluded_queues {
    () => {
        "ARRAY(SELECT queue FROM dj_paused_queues UNION ALL SELECT queue FROM dj_queue_limits \
               UNION ALL SELECT name FROM dj_rate_limits WHERE kind = 'queue')"
    };
}

/// The paused queues, as [`excluded_queues!`] reads them: what the limited claim leaves out.
macro_rules! paused_queues {
    () => {
        "ARRAY(SELECT queue FROM dj_paused_queues)"
    };
}

/// The columns a claim returns, in [`super::super::rows::job_row`]'s order, of the claimed row `j`.
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
    (statement) => {
        concat!(
            ready!("statement_timestamp()"),
            " AND priority >= $2 AND priority <= $3"
        )
    };
}

/// The UPDATE that locks claimed rows `j` for worker `$1` (a unique key held only while the
/// job waits is freed as it starts), up to its `FROM` or `WHERE`: the same for every claim,
/// at `now()` unless told (`$at`).
macro_rules! lock_for_worker {
    () => {
        lock_for_worker!("now()")
    };
    ($at:literal) => {
        concat!(
            "UPDATE delayed_jobs AS j SET locked_at = ",
            $at,
            ", locked_by = $1, started_at = NULL, \
             unique_key = CASE WHEN j.unique_running THEN j.unique_key END "
        )
    };
}

/// The running rows of one key or queue (`$on`, e.g. `"queue = lim.queue"`), counted as `n`
/// in a lateral subquery through that column's index.
macro_rules! running_count {
    ($on:literal) => {
        concat!(
            "CROSS JOIN LATERAL ( \
                 SELECT count(*) AS n FROM delayed_jobs \
                 WHERE ",
            $on,
            " AND ",
            running!(),
            ") AS r"
        )
    };
}

/// Claims the rows of the CTE `picked` for worker `$1`, returning them. The ids are read
/// once into an array (an InitPlan), so the UPDATE finds each row by its primary key whatever
/// the planner guesses of how many `picked` holds (a join guessed large hashed the table).
macro_rules! claim_picked {
    () => {
        concat!(
            lock_for_worker!(),
            "WHERE j.id = ANY (ARRAY(SELECT id FROM picked)) \
             RETURNING ",
            claimed_columns!()
        )
    };
}

/// The every-queue claim, with `$from` (a condition on the walk's start) after the
/// conditions of [`ready_rows!`].
macro_rules! every_queue_claim {
    ($from:literal) => {
        concat!(
            "WITH picked AS MATERIALIZED ( \
                 SELECT id FROM delayed_jobs WHERE ",
            ready_rows!(),
            $from,
            " AND concurrency_key IS NULL \
               AND EXISTS (SELECT 1 FROM dj_workers WHERE name = $1) \
               AND (queue IS NULL OR queue <> ALL (",
            excluded_queues!(),
            ")) \
             ORDER BY priority, run_at LIMIT $4 FOR UPDATE SKIP LOCKED) ",
            claim_picked!()
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
pub const CLAIM: &str = every_queue_claim!("");

/// [`CLAIM`] from a floor: the index walk starts at the key `($5, $6)` (priority, run_at)
/// instead of at the top, past the entries of every row claimed before it. While a held
/// MVCC horizon keeps vacuum from removing deleted rows, their index entries cannot be
/// marked dead either, and a walk from the top reads them all on every claim. The worker
/// claims from the floor only while working through a backlog, and from the top at least
/// once a second (see the claim's `ClaimFloor`).
#[doc(hidden)]
pub const CLAIM_FROM: &str = every_queue_claim!(" AND (priority, run_at) >= ($5, $6)");

/// The claim for a worker of listed queues, with the list `$queues` (a FROM item `q` with a
/// `name` column), the further columns of `q` that `quota` carries (`$carried`), and the
/// conditions on where the walks of `cand` and `picked` start (`$cand_from`, `$pick_from`).
macro_rules! listed_queues_claim {
    ($queues:literal, $carried:literal, $cand_from:literal, $pick_from:literal) => {
        concat!(
            "WITH cand AS MATERIALIZED ( \
                 SELECT q.name, c.priority, c.run_at \
                 FROM ",
            $queues,
            " CROSS JOIN LATERAL ( \
                     SELECT priority, run_at FROM delayed_jobs \
                     WHERE queue = q.name AND ",
            ready_rows!(),
            $cand_from,
            " AND concurrency_key IS NULL \
                     ORDER BY priority, run_at LIMIT $4) AS c \
                 WHERE EXISTS (SELECT 1 FROM dj_workers WHERE name = $1) \
                   AND q.name <> ALL (",
            excluded_queues!(),
            ") \
                 ORDER BY c.priority, c.run_at LIMIT $4), \
             quota AS ( \
                 SELECT q.name",
            $carried,
            ", (SELECT count(*) FROM cand WHERE cand.name = q.name) AS n \
                 FROM ",
            $queues,
            "), \
             picked AS MATERIALIZED ( \
                 SELECT p.id FROM quota \
                 CROSS JOIN LATERAL ( \
                     SELECT id FROM delayed_jobs \
                     WHERE queue = quota.name AND ",
            ready_rows!(),
            $pick_from,
            " AND concurrency_key IS NULL \
                     ORDER BY priority, run_at LIMIT quota.n FOR UPDATE SKIP LOCKED) AS p) ",
            claim_picked!()
        )
    };
}

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
pub const CLAIM_QUEUES: &str = listed_queues_claim!(
    "(SELECT DISTINCT unnest($5::text[])) AS q(name)",
    "",
    "",
    ""
);

/// [`CLAIM_QUEUES`] from a floor per queue: `$6` and `$7`, in `$5`'s order (which has no
/// name twice), are the key each queue's walks start at (`i32::MIN` and year 1 walk a queue
/// from its top). See [`CLAIM_FROM`]. The start is written on all three columns of
/// `delayed_jobs_queue_ready`, so that only that index can take it as where its walk starts.
#[doc(hidden)]
pub const CLAIM_QUEUES_FROM: &str = listed_queues_claim!(
    "unnest($5::text[], $6::int4[], $7::timestamptz[]) AS q(name, fp, ft)",
    ", q.fp, q.ft",
    " AND (queue, priority, run_at) >= (q.name, q.fp, q.ft)",
    " AND (queue, priority, run_at) >= (quota.name, quota.fp, quota.ft)"
);

/// The claim of limited jobs (a row with a `concurrency_key`, or of a queue in
/// `dj_queue_limits` or with a rate in `dj_rate_limits`), which the claims above never take. It runs after
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
///
/// Rate limits count starts, not running rows: each claimed row with a rate writes one row to
/// `dj_rate_starts` per bucket it is in (its key's, its queue's), counting until its claim
/// time plus the period, in the same statement (`recorded`). The claim time is
/// `statement_timestamp()`, taken after the lock, both as the rows' `locked_at` and as the
/// instant the counts are read: a claim's starts never predate the previous claim's. Rows are
/// ready by that clock too, not by the transaction's start (`now()`, before the lock's wait):
/// a job enqueued while the claim waited for the lock is the claim's to take.
macro_rules! limited_claim_sql {
    ($lim_predicate:literal, $queue_predicate:literal) => {
        concat!(
            "WITH RECURSIVE lim AS (",
            queue_limits!(),
            "), \
             walk (k, n) AS ( \
                 SELECT ",
            next_key!("coalesce($6, '')"),
            ", 1 \
                 UNION ALL \
                 SELECT ",
            next_key!("walk.k"),
            ", walk.n + 1 FROM walk WHERE walk.k IS NOT NULL AND walk.n < $5), \
             wrap (k, n) AS ( \
                 SELECT ",
            next_key!("''"),
            ", (SELECT count(*) FROM walk WHERE k IS NOT NULL) + 1 WHERE $6 IS NOT NULL \
                 UNION ALL \
                 SELECT ",
            next_key!("wrap.k"),
            ", wrap.n + 1 FROM wrap WHERE wrap.k IS NOT NULL AND wrap.k < $6 AND wrap.n < $5), \
             keys AS MATERIALIZED ( \
                 SELECT k FROM walk WHERE k IS NOT NULL \
                 UNION SELECT k FROM wrap WHERE k IS NOT NULL AND k <= $6 AND n <= $5), \
             per_key AS ( \
                 SELECT greatest(1, ceil(2.0 * $4 / greatest(count(*), 1)))::int8 AS n FROM keys), \
             cand AS ( \
                 SELECT id, queue, ckey, klim, row_rlim, row_rper, priority, run_at FROM ( \
                     SELECT c.id, c.queue, c.concurrency_key AS ckey, c.klim, \
                            c.rate_limit AS row_rlim, c.rate_period_ms AS row_rper, c.priority, c.run_at \
                     FROM lim CROSS JOIN LATERAL ( \
                         SELECT id, queue, concurrency_key, ",
            key_limit!(),
            " AS klim, rate_limit, rate_period_ms, priority, run_at \
                         FROM delayed_jobs WHERE queue = lim.queue AND ",
            ready_rows!(statement),
            " AND ",
            sequence_head!(),
            " ORDER BY priority, run_at LIMIT $5) AS c \
                     WHERE lim.queue <> ALL (",
            paused_queues!(),
            ") ",
            $lim_predicate,
            " UNION \
                     SELECT c.id, c.queue, c.concurrency_key, c.klim, c.rate_limit, c.rate_period_ms, \
                            c.priority, c.run_at \
                     FROM keys CROSS JOIN LATERAL ( \
                         SELECT id, queue, concurrency_key, ",
            key_limit!(),
            " AS klim, rate_limit, rate_period_ms, priority, run_at \
                         FROM delayed_jobs \
                         WHERE concurrency_key IS NOT NULL AND concurrency_key COLLATE \"C\" = keys.k AND ",
            ready_rows!(statement),
            " AND ",
            sequence_head!(),
            " AND (queue IS NULL OR queue <> ALL (",
            paused_queues!(),
            ")) ",
            $queue_predicate,
            " ORDER BY priority, run_at LIMIT (SELECT n FROM per_key)) AS c) AS u \
                 WHERE EXISTS (SELECT 1 FROM dj_workers WHERE name = $1)), \
             krun AS MATERIALIZED ( \
                 SELECT k.ckey, r.n FROM ( \
                     SELECT DISTINCT ckey FROM cand WHERE ckey IS NOT NULL AND klim < ",
            unbounded!(),
            ") AS k ",
            running_count!("concurrency_key = k.ckey"),
            "), \
             qrun AS MATERIALIZED ( \
                 SELECT lim.queue, r.n FROM lim ",
            running_count!("queue = lim.queue"),
            " WHERE lim.max_running IS NOT NULL AND lim.queue IN (SELECT queue FROM cand)), \
             kstarted AS MATERIALIZED ( \
                 SELECT k.ckey, s.n FROM (SELECT DISTINCT ckey FROM cand WHERE ckey IS NOT NULL) AS k ",
            started_count!("'key:' || k.ckey"),
            "), \
             qstarted AS MATERIALIZED ( \
                 SELECT lim.queue, s.n FROM lim ",
            started_count!("'queue:' || lim.queue"),
            " WHERE lim.qrate IS NOT NULL AND lim.queue IN (SELECT queue FROM cand)), ",
            limits_pick!("$4"),
            ", claimed AS (",
            lock_for_worker!("statement_timestamp()"),
            "FROM picked WHERE j.id = picked.id AND j.locked_at IS NULL AND j.failed_at IS NULL \
             RETURNING ",
            claimed_columns!(),
            ", picked.rlim, picked.rper), \
             recorded AS ( \
                 INSERT INTO dj_rate_starts (bucket, until) \
                 SELECT 'key:' || j.concurrency_key, j.locked_at + j.rper * interval '1 millisecond' \
                 FROM claimed AS j WHERE j.rlim IS NOT NULL \
                 UNION ALL \
                 SELECT 'queue:' || j.queue, j.locked_at + l.qper * interval '1 millisecond' \
                 FROM claimed AS j JOIN lim AS l ON l.queue = j.queue WHERE l.qrate IS NOT NULL) \
             SELECT ",
            claimed_columns!(),
            " FROM claimed AS j"
        )
    };
}

/// The key after `$after` (a text expression) in byte order among the keys of rows not failed
/// for good, or null: one probe of `delayed_jobs_key_heads`. Every key is longer than `''`.
macro_rules! next_key {
    ($after:literal) => {
        concat!(
            "(SELECT concurrency_key COLLATE \"C\" FROM delayed_jobs \
              WHERE concurrency_key IS NOT NULL AND failed_at IS NULL \
                AND concurrency_key COLLATE \"C\" > ",
            $after,
            " ORDER BY concurrency_key COLLATE \"C\" LIMIT 1)"
        )
    };
}

/// The `concurrency_limit` of a key that bounds nothing (a fairness key, or a rate's alone):
/// its running rows are not counted. `i32::MAX`, as `crate::model::UNBOUNDED_LIMIT`.
macro_rules! unbounded {
    () => {
        "2147483647"
    };
}
const _: () = assert!(crate::model::UNBOUNDED_LIMIT == i32::MAX);

/// The running rows' count above, for rate limits: the starts of bucket `$bucket` still
/// counting at the claim's time, as `s`, through `dj_rate_starts_bucket`.
macro_rules! started_count {
    ($bucket:literal) => {
        concat!(
            "CROSS JOIN LATERAL ( \
                 SELECT count(*) AS n FROM dj_rate_starts \
                 WHERE bucket = ",
            $bucket,
            " AND until > statement_timestamp()) AS s"
        )
    };
}

/// The limited claim for a worker of every queue.
#[doc(hidden)]
pub const CLAIM_LIMITED: &str = limited_claim_sql!("", "");
/// The limited claim for a worker of listed queues (`$7`).
#[doc(hidden)]
pub const CLAIM_LIMITED_QUEUES: &str = limited_claim_sql!(
    "AND lim.queue = ANY($7::text[])",
    "AND queue = ANY($7::text[])"
);

/// Whether any limited job may be claimable: a queue limit or rate exists, or a ready row has
/// a key.
pub(crate) const LIMITED_WORK: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM dj_queue_limits) \
     OR EXISTS (SELECT 1 FROM dj_rate_limits WHERE kind = 'queue') \
     OR EXISTS (SELECT 1 FROM delayed_jobs WHERE concurrency_key IS NOT NULL \
                AND ",
    ready!("now()"),
    ")"
);

/// When a rate's next start frees up, in seconds from now (none: no start is counting): the
/// earliest `until` among the buckets that still have a ready job waiting. A worker whose
/// limited claim came back short waits until then rather than its `sleep_delay`. Run after
/// the limited claim, in its transaction.
pub(crate) const RATE_REFILL: &str = concat!(
    "SELECT extract(epoch FROM min(b.until) - clock_timestamp())::float8 FROM ( \
         SELECT bucket, min(until) AS until FROM dj_rate_starts \
         WHERE until > statement_timestamp() GROUP BY bucket) AS b \
     WHERE (b.bucket LIKE 'key:%' AND EXISTS (SELECT 1 FROM delayed_jobs \
                WHERE concurrency_key = substr(b.bucket, 5) AND ",
    ready!("now()"),
    ")) \
        OR (b.bucket LIKE 'queue:%' AND EXISTS (SELECT 1 FROM delayed_jobs \
                WHERE queue = substr(b.bucket, 7) AND ",
    ready!("now()"),
    "))"
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
pub(crate) const NO_JIT: &str = no_jit!();

/// Taken (until commit) before a limited claim: one limited claim at a time, cluster-wide.
/// The key is dj's own: "dj" and "limits" as two 32-bit halves. Sent with [`NO_JIT`].
pub(crate) const LIMITED_CLAIM_LOCK: &str = concat!(
    no_jit!(),
    "; SELECT pg_advisory_xact_lock(1785331712, 1818848616)"
);

/// The fast lane's claim, with `$from` as in [`every_queue_claim!`]: the first `$4` ready
/// rows in claim order that no other transaction holds, locked (`FOR UPDATE SKIP LOCKED`) in
/// the lane's open transaction and not rewritten. It takes plain rows only: no concurrency
/// key (their limits count locked rows), no unique key (a unique key held only while the job
/// waits is freed by the ordinary claim's write), no row whose earlier worker died with
/// it (`crashes > 0`: its start must be recorded before it runs), and none of the types named
/// in `$names` (a text array: those marked transactional, whose own transaction deletes the
/// row, which the lane's lock would block). The row comes back as if claimed by `$1` now, in
/// [`claimed_columns!`]' order.
///
/// The names are compared as `name || ''`, an expression without statistics: compared as the
/// column, a generic plan would estimate `name <> ALL($names)` from the column's few distinct
/// values as passing almost no row, and trade the ordered index walk that stops at `$4` rows
/// for a sort of the whole backlog (1.8 s for a million rows, `claim_plan`'s case); as an
/// expression it is estimated to pass most rows, which it does.
macro_rules! lane_claim {
    ($from:literal, $names:literal) => {
        concat!(
            "SELECT j.id, j.priority, j.attempts, j.handler, j.last_error, j.run_at, \
                    now() AS locked_at, j.failed_at, $1::text AS locked_by, j.queue, \
                    j.created_at, j.updated_at, j.name, j.max_run_time, \
                    NULL::timestamptz AS started_at, j.crashes, j.snoozes, j.unique_key, \
                    j.concurrency_key \
             FROM delayed_jobs AS j WHERE ",
            ready_rows!(),
            $from,
            " AND concurrency_key IS NULL AND unique_key IS NULL AND crashes = 0 \
               AND name || '' <> ALL (",
            $names,
            ") AND EXISTS (SELECT 1 FROM dj_workers WHERE name = $1) \
              AND (queue IS NULL OR queue <> ALL (",
            excluded_queues!(),
            ")) \
             ORDER BY priority, run_at LIMIT $4 FOR UPDATE SKIP LOCKED"
        )
    };
}

/// The fast lane's claim for a worker of every queue: [`CLAIM`]'s rows, locked, not updated.
#[doc(hidden)]
pub const LANE_CLAIM: &str = lane_claim!("", "$5");

/// [`LANE_CLAIM`] from a floor, as [`CLAIM_FROM`].
#[doc(hidden)]
pub const LANE_CLAIM_FROM: &str = lane_claim!(" AND (priority, run_at) >= ($5, $6)", "$7");

/// Whether the rows a fast lane never takes (with a unique key, a crash, or a type in
/// `$names`) are among the first `$4` ready rows of every queue in claim order (`$from` as in
/// [`every_queue_claim!`]; rows other transactions hold count too, as an ordinary claim of `$4`
/// reaches past them): a worker of lanes makes the ordinary claim that takes them only then.
/// A walk of the same index as the claim's, bounded by the `LIMIT`; it locks nothing. `$1` is
/// not read.
macro_rules! lane_leftovers {
    ($from:literal, $names:literal) => {
        concat!(
            "SELECT EXISTS (SELECT 1 FROM ( \
                 SELECT unique_key, crashes, name FROM delayed_jobs WHERE ",
            ready_rows!(),
            $from,
            " AND concurrency_key IS NULL AND (queue IS NULL OR queue <> ALL (",
            excluded_queues!(),
            ")) ORDER BY priority, run_at LIMIT $4) AS head \
             WHERE unique_key IS NOT NULL OR crashes > 0 OR name = ANY (",
            $names,
            "))"
        )
    };
}

/// [`lane_leftovers!`] from the top.
#[doc(hidden)]
pub const LANE_LEFTOVERS: &str = lane_leftovers!("", "$5");

/// [`LANE_LEFTOVERS`] from a floor, as [`CLAIM_FROM`].
#[doc(hidden)]
pub const LANE_LEFTOVERS_FROM: &str = lane_leftovers!(" AND (priority, run_at) >= ($5, $6)", "$7");

/// Makes lane rows `$2` ordinary claims of worker `$1`, in the lane's transaction: the jobs
/// still running when the lane closes, and the failed ones (whose outcome is then written as
/// any other's).
pub(crate) const LANE_PROMOTE: &str = concat!(lock_for_worker!(), "WHERE j.id = ANY($2)");

/// Ends a lane's work in its transaction: its finished rows `$1` deleted (the lane holds
/// their locks: no other worker has them), and its batch record `$2`.
pub(crate) const LANE_COMPLETE: &str = "WITH lane AS (DELETE FROM dj_lanes WHERE id = $2) \
     DELETE FROM delayed_jobs WHERE id = ANY($1)";

/// A lane's batch record, written (and committed) before its jobs start.
pub(crate) const LANE_RECORD: &str =
    "INSERT INTO dj_lanes (worker, ids) VALUES ($1, $2) RETURNING id";

/// A lane's batch record, removed after its transaction failed.
pub(crate) const LANE_FORGET: &str = "DELETE FROM dj_lanes WHERE id = $1";

/// After a lane's end failed: its record (the worker's naming any of its ids, $2) goes, and so
/// do the rows its jobs had finished ($3) that no other worker claimed again (this one lets
/// such a job go: its slot is still held). A lane of another worker
/// holding one is waited for (it ends within its window, and the caller has no lane open).
pub(crate) const LANE_ABANDONED: &str = "WITH lane AS ( \
         DELETE FROM dj_lanes WHERE worker = $1 AND ids && $2) \
     DELETE FROM delayed_jobs \
     WHERE id = ANY($3) AND (locked_at IS NULL OR locked_by = $1) AND failed_at IS NULL";

/// The batch records of worker `$1`, or with `$1` null of every worker not registered: the
/// lanes of workers that died. Each of their rows not yet finished counts a crash, so that it
/// takes the ordinary claim next time. A row another worker's lane holds meanwhile is waited
/// for (a lane is open 100 ms at most): skipped, its crash would be lost whenever a new worker
/// took the job again before the rescuer came. Returns how many.
pub(crate) const LANE_RESCUE: &str = "WITH gone AS ( \
         DELETE FROM dj_lanes AS l \
         WHERE ($1::text IS NULL AND NOT EXISTS (SELECT 1 FROM dj_workers w WHERE w.name = l.worker)) \
            OR l.worker = $1 \
         RETURNING ids), \
     crashed AS ( \
         UPDATE delayed_jobs SET crashes = crashes + 1 \
         WHERE id = ANY (ARRAY(SELECT x FROM gone, unnest(gone.ids) AS x)) \
           AND failed_at IS NULL \
         RETURNING 1) \
     SELECT count(*) FROM crashed";
