//! What the pages show besides the rows themselves, rendered on the server so that the
//! dashboard needs no front-end build and works without its script: times as "3 min ago" with
//! the exact time on hover, and the last hour's throughput as an SVG bar chart.

use std::time::{Duration, SystemTime};

use minijinja::value::Value;
use serde::Serialize;

use crate::time::rfc3339;

/// A time as the pages print it: `<time>` with the exact time (RFC 3339, UTC) as its
/// `datetime` and title, and how long ago (or how soon) it is from `now` as its text. The
/// template function `when(time, now)`; an empty or unparsable time prints as it is.
pub(super) fn when(time: &str, now: &str) -> Value {
    let (Ok(t), Ok(now)) = (
        humantime::parse_rfc3339_weak(time),
        humantime::parse_rfc3339_weak(now),
    ) else {
        return Value::from(time);
    };
    let exact = minijinja::HtmlEscape(time).to_string();
    Value::from_safe_string(format!(
        "<time datetime=\"{exact}\" title=\"{exact}\">{}</time>",
        relative(now, t)
    ))
}

/// `t` from `now`: "just now", "42 s ago", "3 min ago", "5 h ago", "2 d ago", or "in 3 min".
pub(super) fn relative(now: SystemTime, t: SystemTime) -> String {
    let (span, past) = match now.duration_since(t) {
        Ok(d) => (d, true),
        Err(e) => (e.duration(), false),
    };
    let secs = span.as_secs();
    let amount = match secs {
        0..5 => return "just now".to_owned(),
        5..60 => format!("{secs} s"),
        60..3_600 => format!("{} min", secs / 60),
        3_600..172_800 => format!("{} h", secs / 3_600),
        _ => format!("{} d", secs / 86_400),
    };
    if past {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// One minute's bar: succeeded attempts stacked under failed ones, in the chart's units.
#[derive(Debug, Serialize, PartialEq)]
pub(super) struct Bar {
    x: u32,
    ok_y: u32,
    ok_h: u32,
    failed_y: u32,
    failed_h: u32,
    /// The minute (RFC 3339) and its counts, for the bar's tooltip.
    label: String,
}

/// The chart's drawing area: one bar per minute of the last hour.
pub(super) const CHART_MINUTES: u32 = 60;
const BAR_WIDTH: u32 = 10;
const CHART_HEIGHT: u32 = 100;

/// The last hour's throughput (`minutes`: minute, succeeded, failed, any order, gaps
/// allowed) as bars ending at `now`'s minute, scaled so that the busiest minute fills the
/// height, and that minute's total.
pub(super) fn throughput_bars(
    now: SystemTime,
    minutes: &[(SystemTime, i64, i64)],
) -> (Vec<Bar>, i64) {
    let minute_of = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 60)
    };
    let last = minute_of(now);
    let first = last.saturating_sub(u64::from(CHART_MINUTES - 1));
    let mut counts = vec![(0i64, 0i64); CHART_MINUTES as usize];
    for &(minute, ok, failed) in minutes {
        let m = minute_of(minute);
        if (first..=last).contains(&m) {
            let slot = &mut counts[(m - first) as usize];
            slot.0 += ok.max(0);
            slot.1 += failed.max(0);
        }
    }
    let peak = counts.iter().map(|(ok, f)| ok + f).max().unwrap_or(0);
    let scale = |n: i64| -> u32 {
        if peak == 0 {
            0
        } else {
            // Round up, so that a minute with any attempt shows at least a sliver.
            ((n * i64::from(CHART_HEIGHT) + peak - 1) / peak) as u32
        }
    };
    let bars = counts
        .iter()
        .enumerate()
        .map(|(i, &(ok, failed))| {
            let (ok_h, failed_h) = (scale(ok), scale(failed));
            let ok_h = ok_h.min(CHART_HEIGHT);
            let failed_h = failed_h.min(CHART_HEIGHT - ok_h);
            let minute = SystemTime::UNIX_EPOCH + Duration::from_secs((first + i as u64) * 60);
            Bar {
                x: i as u32 * BAR_WIDTH,
                ok_y: CHART_HEIGHT - ok_h,
                ok_h,
                failed_y: CHART_HEIGHT - ok_h - failed_h,
                failed_h,
                label: format!("{}: {ok} succeeded, {failed} failed", rfc3339(minute)),
            }
        })
        .collect();
    (bars, peak)
}

#[cfg(test)]
mod tests {
    use super::{relative, throughput_bars, when, CHART_MINUTES};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn relative_times() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ago = |s| relative(now, now - Duration::from_secs(s));
        assert_eq!(ago(2), "just now");
        assert_eq!(ago(42), "42 s ago");
        assert_eq!(ago(200), "3 min ago");
        assert_eq!(ago(5 * 3600 + 10), "5 h ago");
        assert_eq!(ago(3 * 86_400), "3 d ago");
        assert_eq!(relative(now, now + Duration::from_secs(190)), "in 3 min");
        let html = when("2026-12-06T10:00:00.000Z", "2026-12-06T10:03:10.000Z").to_string();
        assert_eq!(
            html,
            "<time datetime=\"2026-12-06T10:00:00.000Z\" title=\"2026-12-06T10:00:00.000Z\">3 min ago</time>"
        );
        assert_eq!(
            when("never", "2026-12-06T10:03:10.000Z").to_string(),
            "never"
        );
    }

    #[test]
    fn bars_scale_to_the_busiest_minute() {
        let now = UNIX_EPOCH + Duration::from_secs(60 * 1_000 + 30);
        let minute = |m: u64| UNIX_EPOCH + Duration::from_secs(60 * m);
        let (bars, peak) = throughput_bars(
            now,
            &[
                (minute(1_000), 75, 25),
                (minute(990), 10, 0),
                (minute(900), 5, 5),
            ],
        );
        assert_eq!(bars.len(), CHART_MINUTES as usize);
        assert_eq!(peak, 100);
        let last = &bars[59];
        assert_eq!((last.ok_h, last.failed_h, last.failed_y), (75, 25, 0));
        assert_eq!((bars[49].ok_h, bars[49].failed_h), (10, 0));
        assert!(bars[..49].iter().all(|b| b.ok_h == 0 && b.failed_h == 0));
        let (empty, peak) = throughput_bars(now, &[]);
        assert_eq!(peak, 0);
        assert!(empty.iter().all(|b| b.ok_h == 0));
    }
}
