//! The one duration grammar of dj: flags, URL keys and `#[job(max_run_time = ...)]`.

use std::time::Duration;

/// A duration as dj reads one everywhere (these flags and `#[job(max_run_time = ...)]`):
/// humantime's grammar (`250ms`, `30s`, `15m`, `4h`, `1d`, `1h30m`, `1h 30m`), and a bare
/// number is seconds (`30`, `2.5`), as in delayed_job's environment variables.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    // The bare-number rule; dj-macros' `max_run_time` has the same line.
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
