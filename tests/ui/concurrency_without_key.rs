use dj::{Job, Perform};
use serde::{Deserialize, Serialize};

#[derive(Job, Serialize, Deserialize)]
#[job(concurrency = 1, on_duplicate = "replace")]
struct SyncCustomer {
    customer_id: i64,
}

impl Perform for SyncCustomer {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {
    let _ = SyncCustomer { customer_id: 7 }.delay();
}
