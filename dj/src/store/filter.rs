//! The SQL of the filtered commands (`jobs`, `count`, `delete`, `retry`), written once for
//! every backend. A backend supplies its dialect: its clock expression and its placeholders.
//! Values are always bound parameters; only fixed fragments are written into the SQL text.

use super::{JobFilter, JobState};

/// How a backend spells the parts that differ.
pub(crate) struct Dialect {
    /// The database clock, e.g. `now()`.
    pub now: &'static str,
    /// The n-th (1-based) parameter, e.g. `$1` or `?1`.
    pub placeholder: fn(usize) -> String,
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

/// `SELECT columns ... ORDER BY id [LIMIT n]`.
pub(crate) fn list(d: &Dialect, filter: &JobFilter, columns: &str) -> Statement {
    let (clause, values) = where_clause(d, filter);
    let limit = filter
        .limit
        .map(|l| format!(" LIMIT {}", l.max(0)))
        .unwrap_or_default();
    Statement {
        sql: format!("SELECT {columns} FROM delayed_jobs{clause} ORDER BY id{limit}"),
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

/// Makes matching unlocked rows ready now with attempts reset (failed ones included).
pub(crate) fn retry_now(d: &Dialect, filter: &JobFilter) -> Statement {
    let (clause, values) = where_clause(d, filter);
    let joiner = if clause.is_empty() { " WHERE" } else { " AND" };
    let now = d.now;
    Statement {
        sql: format!(
            "UPDATE delayed_jobs SET run_at = {now}, attempts = 0, failed_at = NULL, \
             updated_at = {now}{clause}{joiner} locked_at IS NULL"
        ),
        values,
    }
}

/// The predicate of a state, by the dialect's clock.
pub(crate) fn state_predicate(d: &Dialect, state: JobState) -> String {
    let now = d.now;
    match state {
        JobState::Ready => format!("(failed_at IS NULL AND locked_at IS NULL AND run_at <= {now})"),
        JobState::Scheduled => {
            format!("(failed_at IS NULL AND locked_at IS NULL AND run_at > {now})")
        }
        JobState::Running => "(failed_at IS NULL AND locked_at IS NOT NULL)".to_owned(),
        JobState::Failed => "(failed_at IS NOT NULL)".to_owned(),
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
        now: "now()",
        placeholder: |n| format!("${n}"),
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
}
