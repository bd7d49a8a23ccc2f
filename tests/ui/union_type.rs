use dj::Job;

#[derive(Job)]
union FetchFeed {
    id: u64,
    score: f64,
}

fn main() {}
