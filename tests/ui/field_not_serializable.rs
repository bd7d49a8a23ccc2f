use dj::{Job, Perform};
use serde::{Deserialize, Serialize};

struct Feed {
    url: String,
}

#[derive(Job, Serialize, Deserialize)]
struct FetchFeed {
    feed: Feed,
}

impl Perform for FetchFeed {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {}
