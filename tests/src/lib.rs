//! Support for dj's integration tests: a fresh database per test on either backend, the job
//! types the tests enqueue, and a perform log that counts performs across processes.

pub mod jobs;
pub mod net;
pub mod pgbouncer;
pub mod pool;
pub mod recording;
pub mod support;

/// The state the test worker binary gives its jobs.
pub fn state() -> dj::State {
    dj::State::new().with(jobs::Greeting("hello from the worker state".to_owned()))
}

/// The README's Rust snippets, each a doc test (`cargo test --doc -p dj-tests`, part of
/// `cargo test --workspace`). See `readme.rs`.
#[cfg(doctest)]
mod readme;
