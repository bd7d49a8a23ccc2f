#[doc = include_str!("../../README.md")]
pub struct Readme;

// The attribute sits on line 1 so that a failing snippet's test name,
// "tests/src/readme.rs - readme::Readme (line N)", gives its line in README.md.
//
// Every ```rust block of README.md is a doc test of this crate: compiled as written, and run
// unless it is marked `no_run`. They live here rather than in dj so that they can use what an
// app would (sqlx, reqwest, tracing-subscriber: this crate's dependencies), and so that dj's
// package needs no file outside dj/ (`cargo package` builds dj from its own archive).
