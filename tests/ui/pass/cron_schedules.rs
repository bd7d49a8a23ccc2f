// A recurring job from a `Default` type and from a function without arguments; both are
// registered for the worker (checked in the conformance suite), and a bad time zone is an
// error a worker reports at start.
use dj::{Job, Perform};
use serde::{Deserialize, Serialize};

#[derive(Default, Job, Serialize, Deserialize)]
#[job(cron = "0 */5 * * * *", tz = "Europe/Paris", missed = "skip", queue = "maintenance")]
struct Rollup {
    window_minutes: u32,
}

impl Perform for Rollup {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[dj::job(cron = "30 2 * * *")]
fn nightly_cleanup() {}

fn main() {
    let _ = Rollup::default().delay();
    let _ = NightlyCleanup::default().delay();
    nightly_cleanup();
}
