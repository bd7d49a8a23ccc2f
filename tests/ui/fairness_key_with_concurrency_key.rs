use dj::Job;
use serde::{Deserialize, Serialize};

#[derive(Job, Serialize, Deserialize)]
#[job(fairness_key = "tenant_id", concurrency_key = "tenant_id")]
struct Export {
    tenant_id: i64,
}

impl dj::Perform for Export {
    type Error = std::convert::Infallible;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {}
