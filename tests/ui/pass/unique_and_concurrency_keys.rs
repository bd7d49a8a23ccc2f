// Keys built from fields, for a struct and for a `#[dj::job]` function's arguments, and the
// whole-payload form; a sequence key; the settings land in the type's options.
use dj::{Job, Perform};
use serde::{Deserialize, Serialize};

#[derive(Job, Serialize, Deserialize)]
#[job(unique = "customer_id, region", on_duplicate = "replace", unique_until = "done")]
#[job(concurrency_key = "customer_id", concurrency = 2)]
struct SyncCustomer {
    customer_id: i64,
    region: String,
    note: String,
}

impl Perform for SyncCustomer {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[derive(Job, Serialize, Deserialize)]
#[job(unique = true)]
enum Refresh {
    All,
    One(u32),
}

impl Perform for Refresh {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[dj::job(unique = "user_id")]
fn send_digest(user_id: i64, body: String) {
    let _ = (user_id, body);
}

#[dj::job(sequence = "account_id")]
fn post_entry(account_id: i64, cents: i64) {
    let _ = (account_id, cents);
}

fn main() {
    let job = SyncCustomer {
        customer_id: 7,
        region: "eu".into(),
        note: "ignored by the key".into(),
    };
    assert_eq!(job.__unique_key().as_deref(), Some(r#"[7,"eu"]"#));
    assert_eq!(job.__concurrency_key().as_deref(), Some("[7]"));
    assert_eq!(Refresh::One(3).__unique_key().as_deref(), Some(r#"{"One":3}"#));
    assert_eq!(Refresh::All.__unique_key().as_deref(), Some(r#""All""#));
    let digest = SendDigest {
        user_id: 1,
        body: "hi".into(),
    };
    assert_eq!(digest.__unique_key().as_deref(), Some("[1]"));
    let entry = PostEntry {
        account_id: 4,
        cents: 250,
    };
    assert_eq!(entry.__concurrency_key().as_deref(), Some("[4]"));
    assert_eq!(PostEntry::OPTIONS, dj::JobOptions::new().sequence());
    assert_eq!(SyncCustomer::OPTIONS, dj::JobOptions::new()
        .on_duplicate(dj::OnDuplicate::Replace)
        .unique_until_done()
        .concurrency(2));
}
