//! Connecting: the URL's own keys (limits, pooling), percent-decoding, the URL as dj shows
//! it (passwords hidden), and the driver error that means "no such table".

use tokio_postgres::error::SqlState;

use super::pool::Statements;
use crate::error::Error;
pub(crate) use crate::store::pool::Limits;

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

/// A driver error as dj reports it: a missing table or column is [`Error::MissingTable`].
pub(crate) fn missing_table(e: tokio_postgres::Error, database: &str) -> Error {
    match e.code() {
        Some(code) if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN => {
            Error::MissingTable {
                database: database.to_owned(),
            }
        }
        _ => Error::Postgres(e),
    }
}

pub(crate) use crate::store::hide_password;

/// The URL as dj shows it: its password hidden, and `listen_url`'s, decoded.
pub(crate) fn shown_url(url: &str) -> String {
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
