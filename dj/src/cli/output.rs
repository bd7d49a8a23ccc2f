//! Printing rows for people (aligned text) and for programs (`--json`).

use std::time::SystemTime;

use serde::Serialize;

use crate::model::JobRow;
pub(crate) use crate::time::rfc3339;

/// A row as `--json` prints it: every column, times in RFC 3339, plus its state.
#[derive(Debug, Serialize)]
pub(crate) struct RowView<'a> {
    id: i64,
    state: &'static str,
    name: &'a str,
    queue: Option<&'a str>,
    priority: i32,
    attempts: i32,
    run_at: String,
    locked_at: Option<String>,
    locked_by: Option<&'a str>,
    failed_at: Option<String>,
    last_error: Option<&'a str>,
    created_at: String,
    updated_at: String,
    max_run_time: Option<i32>,
    /// The stored handler, `{"job": NAME, "args": FIELDS}`: as an object when it parses, else
    /// (a row edited by hand) as its text.
    handler: serde_json::Value,
}

impl<'a> RowView<'a> {
    pub(crate) fn of(row: &'a JobRow, now: SystemTime) -> Self {
        RowView {
            id: row.id,
            state: row.state(now).as_str(),
            name: &row.name,
            queue: row.queue.as_deref(),
            priority: row.priority,
            attempts: row.attempts,
            run_at: rfc3339(row.run_at),
            locked_at: row.locked_at.map(rfc3339),
            locked_by: row.locked_by.as_deref(),
            failed_at: row.failed_at.map(rfc3339),
            last_error: row.last_error.as_deref(),
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
            max_run_time: row.max_run_time,
            handler: serde_json::from_str(&row.handler)
                .unwrap_or_else(|_| serde_json::Value::String(row.handler.clone())),
        }
    }
}

/// The version of every `--json` shape, printed as its `"version"` field. Within a version
/// fields are only ever added, never removed, renamed or retyped, so a script written against
/// version 1 keeps working; a change that would break one raises it. The README documents
/// each shape.
pub(crate) const JSON_VERSION: u64 = 1;

/// Prints `value`, a JSON object, as pretty JSON with `"version"` ([`JSON_VERSION`]) added.
pub(crate) fn json(value: serde_json::Value) {
    let serde_json::Value::Object(fields) = value else {
        unreachable!("every --json output is an object")
    };
    let mut object = serde_json::Map::new();
    object.insert("version".into(), JSON_VERSION.into());
    object.extend(fields);
    println!(
        "{}",
        serde_json::to_string_pretty(&object).expect("CLI output serializes")
    );
}

/// Prints rows of cells as left-aligned columns under a header.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_804_314_123);
        assert_eq!(rfc3339(t), "2026-11-27T18:31:54.123Z");
        let leap_day = UNIX_EPOCH + Duration::from_micros(951_782_400_999_999);
        assert_eq!(rfc3339(leap_day), "2000-02-29T00:00:00.999Z");
    }

    #[test]
    fn clamps_to_four_digit_years() {
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
        let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.999Z");
    }
}
