use dj::{Job, Perform};
use serde::{Deserialize, Serialize};

#[derive(Job, Serialize, Deserialize)]
struct FetchFeed<F> {
    feed: F,
}

impl<F> Perform for FetchFeed<F> {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {
    let _ = FetchFeed { feed: 1 }.delay();
}
