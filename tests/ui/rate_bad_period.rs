use dj::Job;
use serde::{Deserialize, Serialize};

#[derive(Job, Serialize, Deserialize)]
#[job(concurrency_key = "partner", rate = "100/fortnight")]
struct CallPartner {
    partner: String,
}

impl dj::Perform for CallPartner {
    type Error = std::convert::Infallible;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {}
