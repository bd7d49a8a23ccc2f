//! The SQL of the filtered commands (`jobs`, `count`, `delete`, `retry`), written once for
//! every backend. A backend supplies its dialect: its clock expression and its placeholders.
//! Values are always bound parameters; only fixed fragments are written into the SQL text.

use crate::model::{JobFilter, JobState, Order};

// The job states' predicates, written once for both backends and for this file: string
// literals, so that a backend's fixed SQL can use them inside `concat!`. A state is a
// condition on `failed_at`, `locked_at` and (ready or scheduled) `run_at` against the
// database clock, which the caller passes as a literal (`ready!("now()")`).

/// Not failed, not locked: ready or scheduled, by its `run_at`.
macro_rules! waiting {
    () => {
        "failed_at IS NULL AND locked_at IS NULL"
    };
}

/// Waiting, and due by the clock `$now` (a literal, e.g. `"now()"`).
macro_rules! ready {
    ($now:literal) => {
        concat!($crate::store::filter::waiting!(), " AND run_at <= ", $now)
    };
}

/// Waiting, and not yet due by the clock `$now`.
macro_rules! scheduled {
    ($now:literal) => {
        concat!($crate::store::filter::waiting!(), " AND run_at > ", $now)
    };
}

/// Locked by a worker, not failed.
macro_rules! running {
    () => {
        "failed_at IS NULL AND locked_at IS NOT NULL"
    };
}

/// A row of `delayed_jobs` (unaliased) that may start as far as its sequence goes: it is in
/// none (its `concurrency_limit` is not the sequence marker, 0), or no earlier row of its
/// sequence is still there without having failed for good (waiting, running or retrying).
/// Served by `delayed_jobs_sequence`.
macro_rules! sequence_head {
    () => {
        "(concurrency_limit IS NULL OR concurrency_limit <> 0 OR NOT EXISTS ( \
             SELECT 1 FROM delayed_jobs AS h \
             WHERE h.concurrency_key = delayed_jobs.concurrency_key \
               AND h.concurrency_limit = 0 AND h.failed_at IS NULL AND h.id < delayed_jobs.id))"
    };
}

/// A row's key limit for the limited claim: a sequence's (marker 0) is one.
macro_rules! key_limit {
    () => {
        "coalesce(nullif(concurrency_limit, 0), 1)"
    };
}

/// Failed for good.
macro_rules! failed {
    () => {
        "failed_at IS NOT NULL"
    };
}

/// The queues the limited claim serves, the same on PostgreSQL and SQLite (MySQL, which has no
/// FULL JOIN, spells it its own way): each queue with a limit on running jobs (`max_running`)
/// or a rate (`qrate` starts per `qper` milliseconds), or both.
#[allow(unused_macros)] // not MySQL's
macro_rules! queue_limits {
    () => {
        "SELECT coalesce(l.queue, r.name) AS queue, l.max_running, \
                r.max_starts AS qrate, r.period_ms AS qper \
         FROM dj_queue_limits AS l FULL JOIN \
              (SELECT name, max_starts, period_ms FROM dj_rate_limits WHERE kind = 'queue') AS r \
              ON r.name = l.queue"
    };
}

/// The limited claim's choice, the same on both backends: of the candidates `cand` (with
/// their key `ckey`, key limit `klim`, the rate their row carries (`row_rlim` starts per
/// `row_rper` ms) and queue), given per key the running counts (`krun`) and the starts still
/// counting (`kstarted`), and the same per limited queue (`qrun`, `qstarted`, `lim`), the rows
/// that start: ranked per key, then per queue, each kept only while its running count plus
/// its rank stays within the limit, and its starts plus its rank within the rate. A rate set
/// at run time for the key (`dj_rate_limits`) replaces the row's. A claim takes at most its
/// share of a rate's starts, split between the registered workers (rounded up), so that a
/// refill is spread over the workers that wake for it rather than won by the first. Then the
/// first `$limit` (the backend's placeholder) round-robin between keys: every key's first
/// row, by priority and run_at, then every key's second, and so on (the rows of limited queues
/// without a key count as one key). CTEs `kranked` to `picked`, which carries each row's rate
/// (`rlim`, `rper`) for recording its start.
macro_rules! limits_pick {
    ($limit:literal) => {
        concat!(
            "share AS ( \
                 SELECT CASE WHEN count(*) > 0 THEN count(*) ELSE 1 END AS workers FROM dj_workers), \
             kranked AS ( \
                 SELECT c.*, coalesce(o.max_starts, c.row_rlim) AS rlim, \
                        coalesce(o.period_ms, c.row_rper) AS rper, \
                        row_number() OVER (PARTITION BY c.ckey ORDER BY c.priority, c.run_at, c.id) AS kn \
                 FROM cand c LEFT JOIN dj_rate_limits o ON o.kind = 'key' AND o.name = c.ckey), \
             kpass AS ( \
                 SELECT k.* FROM kranked k CROSS JOIN share \
                 LEFT JOIN krun r ON r.ckey = k.ckey LEFT JOIN kstarted s ON s.ckey = k.ckey \
                 WHERE k.ckey IS NULL OR (k.kn + coalesce(r.n, 0) <= k.klim \
                     AND (k.rlim IS NULL OR (k.kn + coalesce(s.n, 0) <= k.rlim \
                         AND k.kn <= (k.rlim + share.workers - 1) / share.workers)))), \
             qranked AS ( \
                 SELECT k.*, row_number() OVER (PARTITION BY k.queue ORDER BY k.priority, k.run_at, k.id) AS qn \
                 FROM kpass k), \
             picked AS ( \
                 SELECT q.id, q.rlim, q.rper FROM qranked q CROSS JOIN share \
                 LEFT JOIN lim l ON l.queue = q.queue LEFT JOIN qrun r ON r.queue = q.queue \
                 LEFT JOIN qstarted s ON s.queue = q.queue \
                 WHERE l.queue IS NULL OR ( \
                     (l.max_running IS NULL OR q.qn + coalesce(r.n, 0) <= l.max_running) \
                     AND (l.qrate IS NULL OR (q.qn + coalesce(s.n, 0) <= l.qrate \
                         AND q.qn <= (l.qrate + share.workers - 1) / share.workers))) \
                 ORDER BY q.kn, q.priority, q.run_at LIMIT ",
            $limit,
            ")"
        )
    };
}

#[allow(unused_imports)] // each backend uses its own subset
pub(crate) use {
    failed, key_limit, limits_pick, queue_limits, ready, running, scheduled, sequence_head, waiting,
};

/// How a backend spells the parts that differ.
pub(crate) struct Dialect {
    /// The database clock, e.g. `now()`.
    pub now: &'static str,
    /// The n-th (1-based) parameter, e.g. `$1` or `?1`.
    pub placeholder: fn(usize) -> String,
    /// The function giving the position of a substring (0: absent), `strpos` or `instr`.
    pub position: &'static str,
    /// Whether placeholders are bare `?`s bound in order (MySQL), so that a value used
    /// twice is bound twice; numbered ones (`$1`, `?1`) are bound once.
    pub positional: bool,
}

/// A value to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    Int(i64),
}

/// A statement and the values for its placeholders.
pub(crate) struct Statement {
    pub sql: String,
    pub values: Vec<Value>,
}

/// `SELECT columns ... ORDER BY .. [LIMIT n [OFFSET m]]`.
pub(crate) fn list(d: &Dialect, filter: &JobFilter, columns: &str) -> Statement {
    let (clause, values) = where_clause(d, filter);
    let limit = filter
        .limit
        .map(|l| format!(" LIMIT {}", l.max(0)))
        .unwrap_or_default();
    let offset = match (filter.limit, filter.offset) {
        (Some(_), Some(o)) if o > 0 => format!(" OFFSET {o}"),
        _ => String::new(),
    };
    let order = match filter.order {
        Order::Id => "id",
        Order::IdDesc => "id DESC",
        Order::RunAt => "run_at, id",
        Order::RunAtDesc => "run_at DESC, id DESC",
    };
    Statement {
        sql: format!("SELECT {columns} FROM delayed_jobs{clause} ORDER BY {order}{limit}{offset}"),
        values,
    }
}

/// `SELECT count(*)`.
pub(crate) fn count(d: &Dialect, filter: &JobFilter) -> Statement {
    let (clause, values) = where_clause(d, filter);
    Statement {
        sql: format!("SELECT count(*) FROM delayed_jobs{clause}"),
        values,
    }
}

/// `DELETE`.
pub(crate) fn delete(d: &Dialect, filter: &JobFilter) -> Statement {
    let (clause, values) = where_clause(d, filter);
    Statement {
        sql: format!("DELETE FROM delayed_jobs{clause}"),
        values,
    }
}

/// The workflow steps among the rows a [`delete`] with the same filter removes, named in
/// `dj_workflow_deletes` first (in its transaction), so that the workflow counts them as
/// cancelled rather than succeeded.
// MySQL names the steps it deletes itself (`unfailed_steps`).
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) fn delete_marks(d: &Dialect, filter: &JobFilter) -> Statement {
    let (clause, values) = where_clause(d, filter);
    let joiner = if clause.is_empty() { " WHERE" } else { " AND" };
    Statement {
        sql: format!(
            "INSERT INTO dj_workflow_deletes (job_id) SELECT id FROM delayed_jobs{clause}{joiner} \
             workflow_id IS NOT NULL"
        ),
        values,
    }
}

/// What [`delete_marks`] wrote, removed after the delete.
// MySQL names the steps it deletes itself (`unfailed_steps`).
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) const DELETE_MARKS_CLEAR: &str = "DELETE FROM dj_workflow_deletes";

/// The workflow steps among the rows a [`delete`] with the same filter removes that have not
/// failed (those it finishes, as not succeeded), locked, in id order: MySQL's delete finishes
/// them itself, having no trigger to.
#[cfg(feature = "mysql")]
pub(crate) fn unfailed_steps(d: &Dialect, filter: &JobFilter) -> Statement {
    steps_where(d, filter, "failed_at IS NULL")
}

/// The failed workflow steps among the rows an [`update`] with [`Change::RetryNow`] and the
/// same filter retries, locked, in id order (MySQL's retry counts them pending again).
#[cfg(feature = "mysql")]
pub(crate) fn failed_steps(d: &Dialect, filter: &JobFilter) -> Statement {
    steps_where(d, filter, "failed_at IS NOT NULL AND locked_at IS NULL")
}

#[cfg(feature = "mysql")]
fn steps_where(d: &Dialect, filter: &JobFilter, condition: &str) -> Statement {
    let (clause, values) = where_clause(d, filter);
    let joiner = if clause.is_empty() { " WHERE" } else { " AND" };
    Statement {
        sql: format!(
            "SELECT id FROM delayed_jobs{clause}{joiner} workflow_id IS NOT NULL AND {condition} \
             ORDER BY id FOR UPDATE"
        ),
        values,
    }
}

/// A change made to every matching row that it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Unlocked rows (failed ones included) ready now, attempts reset: `retry`.
    RetryNow,
    /// Waiting rows ready now, attempts kept: a scheduled job's "run now".
    RunNow,
    /// Locked rows released, not charged: a stale lock's "unlock".
    Unlock,
}

/// `UPDATE` for a [`Change`].
pub(crate) fn update(d: &Dialect, filter: &JobFilter, change: Change) -> Statement {
    let (clause, values) = where_clause(d, filter);
    let joiner = if clause.is_empty() { " WHERE" } else { " AND" };
    let now = d.now;
    let (set, applies) = match change {
        Change::RetryNow => (
            format!("run_at = {now}, attempts = 0, failed_at = NULL"),
            "locked_at IS NULL",
        ),
        Change::RunNow => (
            format!("run_at = {now}"),
            "locked_at IS NULL AND failed_at IS NULL",
        ),
        Change::Unlock => (
            "locked_at = NULL, locked_by = NULL".to_owned(),
            "locked_at IS NOT NULL AND failed_at IS NULL",
        ),
    };
    Statement {
        sql: format!("UPDATE delayed_jobs SET {set}, updated_at = {now}{clause}{joiner} {applies}"),
        values,
    }
}

/// Locked rows per worker name (`locked_by`), by name: what `stats` counts as running, per
/// worker.
pub(crate) fn lockers(d: &Dialect) -> String {
    format!(
        "SELECT locked_by, count(*) FROM delayed_jobs WHERE {} \
         GROUP BY locked_by ORDER BY locked_by",
        state_predicate(d, JobState::Running)
    )
}

/// The predicate of a state, by the dialect's clock.
pub(crate) fn state_predicate(d: &Dialect, state: JobState) -> String {
    let now = d.now;
    match state {
        JobState::Ready => format!(concat!("(", ready!("{now}"), ")"), now = now),
        JobState::Scheduled => format!(concat!("(", scheduled!("{now}"), ")"), now = now),
        JobState::Running => concat!("(", running!(), ")").to_owned(),
        JobState::Failed => concat!("(", failed!(), ")").to_owned(),
    }
}

fn where_clause(d: &Dialect, filter: &JobFilter) -> (String, Vec<Value>) {
    let mut parts: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(state) = filter.state {
        parts.push(state_predicate(d, state));
    }
    let mut bind = |column: &str, value: Value| {
        values.push(value);
        parts.push(format!("{column} = {}", (d.placeholder)(values.len())));
    };
    if let Some(queue) = &filter.queue {
        bind("queue", Value::Text(queue.clone()));
    }
    if let Some(name) = &filter.name {
        bind("name", Value::Text(name.clone()));
    }
    if let Some(id) = filter.id {
        bind("id", Value::Int(id));
    }
    if let Some(worker) = &filter.locked_by {
        bind("locked_by", Value::Text(worker.clone()));
    }
    if let Some(workflow) = filter.workflow {
        bind("workflow_id", Value::Int(workflow));
    }
    if let Some(ids) = &filter.ids {
        values.push(Value::Int(*ids.start()));
        values.push(Value::Int(*ids.end()));
        let (from, to) = (
            (d.placeholder)(values.len() - 1),
            (d.placeholder)(values.len()),
        );
        parts.push(format!("id BETWEEN {from} AND {to}"));
    }
    if let Some(text) = filter.search.as_deref().filter(|t| !t.is_empty()) {
        values.push(Value::Text(text.to_lowercase()));
        let p = (d.placeholder)(values.len());
        let again = if d.positional {
            values.push(Value::Text(text.to_lowercase()));
            (d.placeholder)(values.len())
        } else {
            p.clone()
        };
        let position = d.position;
        parts.push(format!(
            "({position}(lower(handler), {p}) > 0 OR {position}(lower(coalesce(last_error, '')), {again}) > 0)"
        ));
    }
    if parts.is_empty() {
        (String::new(), values)
    } else {
        (format!(" WHERE {}", parts.join(" AND ")), values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: Dialect = Dialect {
        position: "strpos",
        now: "now()",
        placeholder: |n| format!("${n}"),
        positional: false,
    };

    #[test]
    fn values_are_bound_never_spliced() {
        let filter = JobFilter {
            state: Some(JobState::Failed),
            queue: Some("x'; DROP TABLE delayed_jobs; --".into()),
            name: Some("Feed".into()),
            ..JobFilter::default()
        };
        let s = delete(&PG, &filter);
        assert_eq!(
            s.sql,
            "DELETE FROM delayed_jobs WHERE (failed_at IS NOT NULL) AND queue = $1 AND name = $2"
        );
        assert_eq!(
            s.values,
            [
                Value::Text("x'; DROP TABLE delayed_jobs; --".into()),
                Value::Text("Feed".into())
            ]
        );
    }

    #[test]
    fn an_id_window_is_two_bound_values_before_the_search() {
        let filter = JobFilter {
            ids: Some(40..=i64::MAX),
            search: Some("Feed".into()),
            order: Order::IdDesc,
            limit: Some(2),
            offset: Some(9),
            ..JobFilter::default()
        };
        let s = list(&PG, &filter, "id");
        assert_eq!(
            s.sql,
            "SELECT id FROM delayed_jobs WHERE id BETWEEN $1 AND $2 AND (strpos(lower(handler), $3) > 0 \
             OR strpos(lower(coalesce(last_error, '')), $3) > 0) ORDER BY id DESC LIMIT 2 OFFSET 9"
        );
        assert_eq!(
            s.values,
            [
                Value::Int(40),
                Value::Int(i64::MAX),
                Value::Text("feed".into())
            ]
        );
    }
}
