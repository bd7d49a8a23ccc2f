use dj::{Job, Perform};
use serde::{Deserialize, Serialize};

#[derive(Job, Serialize, Deserialize)]
struct FetchFeed {
    url: &'static str,
}

impl Perform for FetchFeed {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {}
