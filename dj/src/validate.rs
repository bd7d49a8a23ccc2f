//! Checks on values that reach the table from the outside.

use crate::error::{Error, Result};

/// The longest queue name dj accepts.
pub const MAX_QUEUE_NAME: usize = 255;

/// A queue name is 1 to 255 bytes of text without control characters or commas, and without
/// spaces at either end: exactly the names `--queues a,b` can select. (It is always a bound
/// parameter, so quotes and SQL in it are harmless.) `#[job(queue = ..)]` checks the same rule
/// at compile time.
pub(crate) fn queue_name(queue: Option<&str>) -> Result<()> {
    let Some(queue) = queue else {
        return Ok(());
    };
    let ok = !queue.is_empty()
        && queue.len() <= MAX_QUEUE_NAME
        && !queue.chars().any(|c| c.is_control() || c == ',')
        && queue.trim() == queue;
    if !ok {
        return Err(Error::Invalid(format!(
            "invalid queue name {queue:?}: use 1 to {MAX_QUEUE_NAME} bytes of text without control \
             characters or commas, and no spaces at either end"
        )));
    }
    Ok(())
}
