use dj::{Job, Perform};
use serde::{Deserialize, Serialize};

#[derive(Job, Serialize, Deserialize)]
#[job(sequence = "account_id", concurrency_key = "account_id")]
struct PostEntry {
    account_id: i64,
}

impl Perform for PostEntry {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {
    let _ = PostEntry { account_id: 7 }.delay();
}
