//! Printing rows for people (aligned text) and for programs (`--json`).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::store::JobRow;

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-27T18:31:54.123Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let (secs, millis) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_millis()),
        Err(_) => (0, 0),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

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
    handler: &'a str,
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
            handler: &row.handler,
        }
    }
}

/// Prints `value` as pretty JSON.
pub(crate) fn json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("CLI output serializes")
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
    }
}
