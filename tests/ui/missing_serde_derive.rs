use dj::{Context, Job, Perform};

#[derive(Job)]
struct FetchFeed {
    url: String,
}

impl Perform for FetchFeed {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        println!("{}", self.url);
        Ok(())
    }
}

fn main() {}
