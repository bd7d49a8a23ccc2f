use dj::Job;
use serde::{Deserialize, Serialize};

#[derive(Job, Serialize, Deserialize)]
#[job(queue = "feeds")]
struct FetchFeed {
    url: String,
}

fn main() {}
