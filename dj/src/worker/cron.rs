//! The cron role: once a second, fire the schedules whose time has come (`crate::cron`).
//! Every worker does it; the compare-and-set on each schedule's next fire time decides which
//! one enqueues a given fire time, so no election is needed and a dead worker's turn is
//! simply taken by the next look of any other.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Shared, StopFlag};

pub(super) fn spawn(shared: Arc<Shared>, done: StopFlag) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("dj-cron".into())
        .spawn(move || {
            // Workers look at different moments within each second (spread by pid), so that
            // they do not all query at once.
            let offset = Duration::from_millis(50 + u64::from(std::process::id() % 200));
            while !done.is_set() {
                if !shared.stop.is_set() {
                    look(&shared);
                }
                done.sleep(until_next_second(SystemTime::now()) + offset);
            }
        })
        .expect("spawn the cron thread")
}

fn look(shared: &Shared) {
    match crate::cron::tick(&shared.db) {
        Ok(fired) => {
            for (name, fires) in fired {
                for fire in fires {
                    let at = humantime::format_rfc3339_seconds(fire);
                    shared.say(format_args!("Enqueued schedule {name} for {at}"));
                }
            }
        }
        Err(e) => shared.say_error(format_args!("Error while firing schedules: {e}")),
    }
}

fn until_next_second(now: SystemTime) -> Duration {
    let into = now.duration_since(UNIX_EPOCH).map_or(Duration::ZERO, |d| {
        Duration::from_nanos(u64::from(d.subsec_nanos()))
    });
    Duration::from_secs(1) - into
}
