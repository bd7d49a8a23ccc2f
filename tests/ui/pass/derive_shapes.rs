//! `#[derive(Job)]` on every shape serde stores: named, tuple and unit structs, and enums.

#![deny(warnings)]

use dj::{Job, Perform};
use serde::{Deserialize, Serialize};

macro_rules! perform_nothing {
    ($($job:ty),* $(,)?) => {$(
        impl Perform for $job {
            type Error = std::io::Error;
            fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
                Ok(())
            }
        }
    )*};
}

#[derive(Job, Serialize, Deserialize)]
struct Named {
    id: i64,
    tags: Vec<String>,
    note: Option<String>,
}

#[derive(Job, Serialize, Deserialize)]
struct Tuple(i64, String);

#[derive(Job, Serialize, Deserialize)]
struct Unit;

#[derive(Job, Serialize, Deserialize)]
#[job(queue = "notify")]
enum Notify {
    Email { to: String },
    Sms(String),
    Nobody,
}

/// Serde attributes keep working: a skipped field need not be serializable.
#[derive(Job, Serialize, Deserialize)]
struct WithSerdeAttributes {
    #[serde(rename = "u")]
    url: String,
    #[serde(skip)]
    cache: NotStored,
}

#[derive(Default)]
struct NotStored;

/// A public job in a module, reached by path.
mod feeds {
    use super::*;

    #[derive(Debug, Job, Serialize, Deserialize)]
    pub struct Refresh {
        pub url: String,
    }
}

perform_nothing!(
    Named,
    Tuple,
    Unit,
    Notify,
    WithSerdeAttributes,
    feeds::Refresh
);

fn main() {
    assert_eq!(Named::NAME, "Named");
    assert_eq!(Tuple::NAME, "Tuple");
    assert_eq!(Unit::NAME, "Unit");
    assert_eq!(Notify::NAME, "Notify");
    assert_eq!(WithSerdeAttributes::NAME, "WithSerdeAttributes");
    assert_eq!(feeds::Refresh::NAME, "Refresh");

    let named = Named {
        id: 1,
        tags: Vec::new(),
        note: None,
    };
    let _ = (named.id, named.tags, named.note);
    let tuple = Tuple(1, String::new());
    let _ = (tuple.0, tuple.1);
    let _ = [
        Notify::Email { to: String::new() },
        Notify::Sms(String::new()),
        Notify::Nobody,
    ];
    let with = WithSerdeAttributes {
        url: String::new(),
        cache: NotStored,
    };
    let _ = (with.url, with.cache);
    let _ = feeds::Refresh { url: String::new() }.delay();
}
