use dj::Job;
use serde::{Deserialize, Serialize};

#[derive(Job, Serialize, Deserialize)]
#[job(rate = "0/s")]
struct Report;

impl dj::Perform for Report {
    type Error = std::convert::Infallible;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {}
