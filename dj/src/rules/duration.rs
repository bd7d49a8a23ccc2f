//! The one duration grammar of dj: flags, URL keys and `#[job(max_run_time = ...)]`.

use std::time::Duration;

/// A duration as dj reads one everywhere (these flags and `#[job(max_run_time = ...)]`):
/// humantime's grammar (`250ms`, `30s`, `15m`, `4h`, `1d`, `1h30m`, `1h 30m`), and a bare
/// number is seconds (`30`, `2.5`), as in delayed_job's environment variables.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Some(secs) = text
        .parse()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
    {
        return Ok(secs);
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("invalid duration `{text}` ({e}); write seconds (`30`) or e.g. `250ms`, `30s`, `15m`, `4h`, `1h30m`")
    })
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        let secs = |text| parse_duration(text).map(|d| d.as_secs_f64()).ok();
        assert_eq!(secs("30s"), Some(30.0));
        assert_eq!(secs("5m"), Some(300.0));
        assert_eq!(secs("4h"), Some(14_400.0));
        assert_eq!(secs("1d"), Some(86_400.0));
        assert_eq!(secs("1h30m"), Some(5_400.0));
        assert_eq!(secs("30m1h"), Some(5_400.0));
        assert_eq!(secs("1h 30m"), Some(5_400.0));
        assert_eq!(secs("1d2h3m4s"), Some(93_784.0));
        assert_eq!(secs("250ms"), Some(0.25));
        assert_eq!(secs("30"), Some(30.0));
        assert_eq!(secs(" 30 "), Some(30.0));
        assert_eq!(secs("2.5"), Some(2.5));
        assert_eq!(secs("1.5h"), Some(5_400.0));
        assert_eq!(secs("0s"), Some(0.0));
        for bad in ["", "s", "1H", "-1s", "-1", "soon", "5x"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn message() {
        let error = parse_duration(" soon ").unwrap_err();
        assert!(error.starts_with("invalid duration `soon` ("), "{error}");
        assert!(
            error.ends_with("write seconds (`30`) or e.g. `250ms`, `30s`, `15m`, `4h`, `1h30m`")
        );
    }
}
