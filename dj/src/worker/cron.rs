//! The cron role: about once a second, fire the schedules whose time has come
//! (`crate::cron`). Each second's look is a maintenance task won by one worker (a lease of
//! 0.9 s in `dj_maintenance`), so the cluster makes one look per second, not one per
//! worker; a dead winner's turn is taken by the next worker to look. What makes a fire time
//! enqueue exactly once is the compare-and-set on the schedule's next fire time, not the
//! election: two workers that both looked could still not both fire it.

use std::collections::HashSet;
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
            // Schedules already reported unreadable: said once, not every second.
            let mut unreadable = HashSet::new();
            while !done.is_set() {
                if !shared.stop.is_set() {
                    look(&shared, &mut unreadable);
                }
                done.sleep(until_next_second(SystemTime::now()) + offset);
            }
        })
        .expect("spawn the cron thread")
}

/// Shorter than the second between looks, so that the winner keeps winning while it lives.
const LEASE: Duration = Duration::from_millis(900);

fn look(shared: &Shared, unreadable: &mut HashSet<String>) {
    let won = shared
        .db
        .store()
        .maintenance_claim("cron", &shared.name(), LEASE);
    let fired = won.and_then(|won| {
        if won {
            crate::cron::tick(&shared.db, |schedule, e| {
                if unreadable.insert(schedule.name.clone()) {
                    shared.say_error(format_args!("Schedule {} skipped: {e}", schedule.name));
                }
            })
        } else {
            Ok(Vec::new())
        }
    });
    match fired {
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
