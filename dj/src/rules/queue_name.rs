//! What a queue name may be: checked at enqueue, on the command line, and by
//! `#[job(queue = ..)]` at compile time.

/// The longest queue name dj accepts.
pub const MAX_QUEUE_NAME: usize = 255;

/// Why a queue name is refused, in the order [`check`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueNameError {
    Empty,
    /// Longer than [`MAX_QUEUE_NAME`] bytes.
    TooLong,
    ControlCharacter,
    /// A comma, or spaces at either end: `--queues a,b` could not select it.
    CommaOrOuterSpace,
}

/// A queue name is 1 to 255 bytes of text without control characters or commas, and without
/// spaces at either end: exactly the names `--queues a,b` can select. (It is always a bound
/// parameter, so quotes and SQL in it are harmless.)
pub fn check(queue: &str) -> Result<(), QueueNameError> {
    if queue.is_empty() {
        Err(QueueNameError::Empty)
    } else if queue.len() > MAX_QUEUE_NAME {
        Err(QueueNameError::TooLong)
    } else if queue.chars().any(char::is_control) {
        Err(QueueNameError::ControlCharacter)
    } else if queue.contains(',') || queue.trim() != queue {
        Err(QueueNameError::CommaOrOuterSpace)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{check, QueueNameError, MAX_QUEUE_NAME};

    #[test]
    fn names() {
        for good in ["mail", "a", "mail feeds", "'; drop table jobs; --", "é"] {
            assert_eq!(check(good), Ok(()), "{good:?}");
        }
        assert_eq!(check(&"q".repeat(MAX_QUEUE_NAME)), Ok(()));
        assert_eq!(check(""), Err(QueueNameError::Empty));
        let long = "q".repeat(MAX_QUEUE_NAME + 1);
        assert_eq!(check(&long), Err(QueueNameError::TooLong));
        for bad in ["mail\n", "ma\til", "\u{7f}"] {
            assert_eq!(check(bad), Err(QueueNameError::ControlCharacter), "{bad:?}");
        }
        for bad in ["mail,feeds", " mail", "mail ", "\u{a0}mail"] {
            assert_eq!(
                check(bad),
                Err(QueueNameError::CommaOrOuterSpace),
                "{bad:?}"
            );
        }
    }
}
