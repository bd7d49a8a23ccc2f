use dj::{Job, Perform};
use serde::{Deserialize, Serialize};

#[derive(Job, Serialize, Deserialize)]
#[job(max_run_time = "100years")]
struct FetchFeed {
    url: String,
}

impl Perform for FetchFeed {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {
    let _ = FetchFeed { url: String::new() }.delay();
}
