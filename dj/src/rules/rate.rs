//! The one rate grammar of dj: `#[job(rate = "20/s")]`, `worker rate` and `"20/s".parse()`.

use std::time::Duration;

/// The longest period a rate may have: starts are remembered for one period.
pub const MAX_RATE_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

/// A rate as dj reads one: `STARTS/PERIOD`, where the period is a duration in dj's grammar
/// (`250ms`, `10s`, `5m`, `1h`, `1d`) or a unit alone meaning one of it (`s`, `min`, `h`,
/// `d`): `20/s`, `100/min`, `5/10s`, `1000/h`. Returns the starts and the period.
pub fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let text = text.trim();
    let example = "write STARTS/PERIOD, e.g. `20/s`, `100/min`, `5/10s` or `1000/h`";
    let Some((starts, period)) = text.split_once('/') else {
        return Err(format!("invalid rate `{text}`: {example}"));
    };
    let starts: u32 = starts.trim().parse().map_err(|_| {
        format!(
            "invalid rate `{text}`: `{}` is not a whole number of starts; {example}",
            starts.trim()
        )
    })?;
    let period = period.trim();
    // A unit alone is one of it: `s` is `1s`.
    let one = if period.starts_with(|c: char| c.is_ascii_alphabetic()) {
        format!("1{period}")
    } else {
        period.to_owned()
    };
    let period = super::duration::parse_duration(&one)
        .map_err(|_| format!("invalid rate `{text}`: `{period}` is not a period; {example}"))?;
    check_rate(starts, period)?;
    Ok((starts, period))
}

/// Whether `starts` per `period` is a rate dj can keep: at least one start, at most
/// `i32::MAX`, in a period from one millisecond to [`MAX_RATE_PERIOD`].
pub fn check_rate(starts: u32, period: Duration) -> Result<(), String> {
    if starts == 0 {
        return Err(
            "a rate of 0 starts would stop the jobs; pause the queue instead, or give at least 1"
                .to_owned(),
        );
    }
    if starts > i32::MAX as u32 {
        return Err(format!(
            "a rate allows at most {} starts per period",
            i32::MAX
        ));
    }
    if period < Duration::from_millis(1) || period > MAX_RATE_PERIOD {
        return Err(format!(
            "a rate's period is from 1ms to 1d (24h); got {period:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_rate;
    use std::time::Duration;

    #[test]
    fn rates() {
        let rate = |text| parse_rate(text).ok();
        assert_eq!(rate("20/s"), Some((20, Duration::from_secs(1))));
        assert_eq!(rate(" 20 / 1s "), Some((20, Duration::from_secs(1))));
        assert_eq!(rate("100/min"), Some((100, Duration::from_secs(60))));
        assert_eq!(rate("100/m"), Some((100, Duration::from_secs(60))));
        assert_eq!(rate("5/10s"), Some((5, Duration::from_secs(10))));
        assert_eq!(rate("1000/h"), Some((1000, Duration::from_secs(3600))));
        assert_eq!(rate("1/d"), Some((1, Duration::from_secs(86_400))));
        assert_eq!(rate("3/250ms"), Some((3, Duration::from_millis(250))));
        assert_eq!(rate("3/2.5"), Some((3, Duration::from_millis(2500))));
        for bad in [
            "", "20", "/s", "20/", "0/s", "-1/s", "x/s", "20/soon", "20/2d", "20/0s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn messages() {
        let error = parse_rate("20").unwrap_err();
        assert_eq!(
            error,
            "invalid rate `20`: write STARTS/PERIOD, e.g. `20/s`, `100/min`, `5/10s` or `1000/h`"
        );
        assert!(parse_rate("0/s").unwrap_err().contains("pause the queue"));
        assert!(parse_rate("20/2d").unwrap_err().contains("from 1ms to 1d"));
    }
}
