//! dj's duration grammar, read by the flags and URL keys; the rule itself is
//! `rules/duration.rs`, which `#[job(max_run_time = ...)]` shares.

pub use crate::rules::duration::parse_duration;
