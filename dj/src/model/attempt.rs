//! A failed attempt, as the attempt history (`dj_attempts`) keeps it.

use std::time::{Duration, SystemTime};

/// One failed attempt of a job: what [`crate::Db::job_attempts`] lists, oldest first. A job
/// keeps its latest [`MAX_ATTEMPTS_KEPT`], each error at most [`MAX_ATTEMPT_ERROR_BYTES`];
/// they outlive the job by the workers' `result_retention`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The attempt's number: the job's `attempts` once it was counted (1 for the first).
    pub attempt: i32,
    /// The worker that ran it (for a crash, the worker that died).
    pub worker: String,
    /// When it started: as the worker measured its run or, where it could not (a crash, an
    /// overrun), when the start was recorded.
    pub started_at: SystemTime,
    /// When its failure was recorded.
    pub finished_at: SystemTime,
    /// Its error, as `last_error` had it (cut to [`MAX_ATTEMPT_ERROR_BYTES`]).
    pub error: String,
}

impl Attempt {
    /// How long it ran (zero if the clocks disagree).
    pub fn duration(&self) -> Duration {
        (self.finished_at.duration_since(self.started_at)).unwrap_or_default()
    }
}

/// The most failed attempts a job keeps: older ones are deleted as new ones are recorded.
pub const MAX_ATTEMPTS_KEPT: i32 = 25;

/// The longest error an attempt keeps, in bytes; a longer one is cut at a character
/// boundary and ends with ` … (cut)`.
pub const MAX_ATTEMPT_ERROR_BYTES: usize = 4096;

/// `error` as the history keeps it.
pub(crate) fn kept_error(error: &str) -> String {
    if error.len() <= MAX_ATTEMPT_ERROR_BYTES {
        return error.to_owned();
    }
    const CUT: &str = " … (cut)";
    let mut end = MAX_ATTEMPT_ERROR_BYTES - CUT.len();
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT}", &error[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_at_a_character_boundary() {
        assert_eq!(kept_error("short"), "short");
        let long = "é".repeat(MAX_ATTEMPT_ERROR_BYTES);
        let kept = kept_error(&long);
        assert!(kept.len() <= MAX_ATTEMPT_ERROR_BYTES, "{}", kept.len());
        assert!(kept.ends_with(" … (cut)"));
        assert!(kept.starts_with("éé"));
    }
}
