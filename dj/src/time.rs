//! How dj prints a time for people and programs: RFC 3339 in UTC, the same in the CLI's
//! `--json`, its tables and the dashboard.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-27T18:31:54.123Z`. RFC 3339 has four-digit
/// years, so a time outside 1970..=9999 prints as the nearest end of that range.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    // The last millisecond humantime can print (it refuses years past 9999).
    let last = UNIX_EPOCH + Duration::from_millis(253_402_300_799_999);
    humantime::format_rfc3339_millis(t.clamp(UNIX_EPOCH, last)).to_string()
}
