use dj::{Job, Perform};
use serde::{Deserialize, Serialize};

#[derive(Job, Serialize, Deserialize)]
#[job(cron = "0 0 3 * * *")]
struct NightlyCleanup {
    older_than_days: u32,
}

impl Perform for NightlyCleanup {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {}
