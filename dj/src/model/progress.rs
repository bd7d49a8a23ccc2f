//! A running job's reported progress, as `dj_progress` keeps it.

use std::time::SystemTime;

/// How far a running job says it is ([`crate::Context::progress`]), as its worker last
/// wrote it: at most a second old while the job runs, gone once it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// From 0.0 to 1.0.
    pub fraction: f64,
    /// A short message (at most [`MAX_PROGRESS_MESSAGE_BYTES`]).
    pub message: String,
    /// When the worker wrote it.
    pub updated_at: SystemTime,
}

/// The longest progress message kept, in bytes; a longer one is cut at a character boundary.
pub const MAX_PROGRESS_MESSAGE_BYTES: usize = 200;

/// `fraction` as kept: within 0.0 to 1.0 (NaN is 0.0).
pub(crate) fn kept_fraction(fraction: f64) -> f64 {
    if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    }
}

/// `message` as kept: cut to [`MAX_PROGRESS_MESSAGE_BYTES`] at a character boundary.
pub(crate) fn kept_message(message: &str) -> String {
    let mut end = message.len().min(MAX_PROGRESS_MESSAGE_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_clamped_and_messages_cut() {
        assert_eq!(kept_fraction(f64::NAN), 0.0);
        assert_eq!(kept_fraction(-1.0), 0.0);
        assert_eq!(kept_fraction(7.0), 1.0);
        assert_eq!(kept_fraction(0.25), 0.25);
        let long = "é".repeat(MAX_PROGRESS_MESSAGE_BYTES);
        let kept = kept_message(&long);
        assert!(kept.len() <= MAX_PROGRESS_MESSAGE_BYTES && kept.starts_with('é'));
    }
}
