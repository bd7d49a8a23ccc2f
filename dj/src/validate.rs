//! Checks on values that reach the table from the outside, as `dj::Error`s. The rules
//! themselves are in `rules/`, shared with dj-macros.

use crate::error::{Error, Result};
pub use crate::rules::queue_name::MAX_QUEUE_NAME;

/// A queue name is 1 to 255 bytes of text without control characters or commas, and without
/// spaces at either end (`rules::queue_name`). `#[job(queue = ..)]` checks the same rule at
/// compile time.
pub(crate) fn queue_name(queue: Option<&str>) -> Result<()> {
    let Some(queue) = queue else {
        return Ok(());
    };
    crate::rules::queue_name::check(queue).map_err(|_| {
        Error::Invalid(format!(
            "invalid queue name {queue:?}: use 1 to {MAX_QUEUE_NAME} bytes of text without control \
             characters or commas, and no spaces at either end"
        ))
    })
}
