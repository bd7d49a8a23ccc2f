//! Checks on values that reach the table from the outside.

use crate::error::{Error, Result};

/// The longest queue name dj accepts.
pub const MAX_QUEUE_NAME: usize = 255;

/// A queue name is any text of 1 to 255 bytes without control characters. (It is always a
/// bound parameter, so quotes and SQL in it are harmless; the limit keeps it readable.)
pub(crate) fn queue_name(queue: Option<&str>) -> Result<()> {
    let Some(queue) = queue else {
        return Ok(());
    };
    if queue.is_empty() || queue.len() > MAX_QUEUE_NAME || queue.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "invalid queue name {queue:?}: use 1 to {MAX_QUEUE_NAME} bytes of text without control characters"
        )));
    }
    Ok(())
}
