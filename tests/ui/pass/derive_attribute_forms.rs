//! Every `#[job(...)]` form on `#[derive(Job)]`, and the constants each one sets.

use std::time::Duration;

use dj::{Job, JobOptions, Perform};
use serde::{Deserialize, Serialize};

/// Implements a `perform` that does nothing, for each type named.
macro_rules! perform_nothing {
    ($($job:ty),* $(,)?) => {$(
        impl Perform for $job {
            type Error = std::io::Error;
            fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
                Ok(())
            }
        }
    )*};
}

/// Keys spread over several attributes, merged.
#[derive(Job, Serialize, Deserialize)]
#[job(name = "fetch_feed", aliases = ["FetchFeed", "feeds::Fetch"])]
#[job(queue = "feeds", priority = -5)]
#[job(max_attempts = 3, max_run_time = "1h30m")]
struct FetchFeed {
    url: String,
}

/// Every key in one attribute, with a trailing comma; `max_run_time` in seconds.
#[derive(Job, Serialize, Deserialize)]
#[job(name = "resize", aliases = [], queue = "images", priority = 10, max_attempts = 1, max_run_time = 90,)]
struct ResizeImage {
    width: u32,
}

/// No settings at all.
#[derive(Job, Serialize, Deserialize)]
#[job]
#[job()]
struct Ping;

#[derive(Job, Serialize, Deserialize)]
#[job(max_run_time = "30s")]
struct Seconds;

#[derive(Job, Serialize, Deserialize)]
#[job(max_run_time = "5m")]
struct Minutes;

#[derive(Job, Serialize, Deserialize)]
#[job(max_run_time = "4h")]
struct Hours;

#[derive(Job, Serialize, Deserialize)]
#[job(max_run_time = "1d2h3m4s", queue = "a queue")]
struct Days;

/// dj's one duration grammar (humantime's, as the worker's flags): units in any order,
/// milliseconds that make whole seconds, a string of bare seconds.
#[derive(Job, Serialize, Deserialize)]
#[job(max_run_time = "30m1h")]
struct AnyOrder;

#[derive(Job, Serialize, Deserialize)]
#[job(max_run_time = "2000ms")]
struct Millis;

#[derive(Job, Serialize, Deserialize)]
#[job(max_run_time = "45")]
struct BareSeconds;

/// Values passed through `macro_rules!` arrive wrapped in invisible groups.
macro_rules! prioritized {
    ($job:ident, $priority:expr, $queue:expr) => {
        #[derive(Job, Serialize, Deserialize)]
        #[job(priority = $priority, queue = $queue)]
        struct $job;
    };
}
prioritized!(Urgent, -100, "urgent");

perform_nothing!(
    FetchFeed,
    ResizeImage,
    Ping,
    Seconds,
    Minutes,
    Hours,
    Days,
    AnyOrder,
    Millis,
    BareSeconds,
    Urgent
);

fn main() {
    assert_eq!(FetchFeed::NAME, "fetch_feed");
    assert_eq!(FetchFeed::ALIASES, ["FetchFeed", "feeds::Fetch"]);
    assert_eq!(
        FetchFeed::OPTIONS,
        JobOptions::new()
            .queue("feeds")
            .priority(-5)
            .max_attempts(3)
            .max_run_time(Duration::from_secs(5_400))
    );

    assert_eq!(ResizeImage::NAME, "resize");
    assert!(ResizeImage::ALIASES.is_empty());
    assert_eq!(
        ResizeImage::OPTIONS,
        JobOptions::new()
            .queue("images")
            .priority(10)
            .max_attempts(1)
            .max_run_time(Duration::from_secs(90))
    );

    assert_eq!(Ping::NAME, "Ping");
    assert!(Ping::ALIASES.is_empty());
    assert_eq!(Ping::OPTIONS, JobOptions::new());

    assert_eq!(
        Seconds::OPTIONS,
        JobOptions::new().max_run_time(Duration::from_secs(30))
    );
    assert_eq!(
        Minutes::OPTIONS,
        JobOptions::new().max_run_time(Duration::from_secs(300))
    );
    assert_eq!(
        Hours::OPTIONS,
        JobOptions::new().max_run_time(Duration::from_secs(14_400))
    );
    assert_eq!(
        Days::OPTIONS,
        JobOptions::new()
            .queue("a queue")
            .max_run_time(Duration::from_secs(93_784))
    );
    assert_eq!(
        AnyOrder::OPTIONS,
        JobOptions::new().max_run_time(Duration::from_secs(5_400))
    );
    assert_eq!(
        Millis::OPTIONS,
        JobOptions::new().max_run_time(Duration::from_secs(2))
    );
    assert_eq!(
        BareSeconds::OPTIONS,
        JobOptions::new().max_run_time(Duration::from_secs(45))
    );
    assert_eq!(
        Urgent::OPTIONS,
        JobOptions::new().priority(-100).queue("urgent")
    );

    let _ = (
        FetchFeed { url: String::new() }.url,
        ResizeImage { width: 1 }.width,
    );
}
