//! What the macros' generated code reaches, and nothing else: `::dj::__private::...`.
//! Not part of dj's public API; it may change in any release.

pub use crate::job::JobOptions;
pub use crate::registry::Registration;
pub use inventory;
pub use serde;
pub use std::time::Duration;

/// The future of a `#[dj::job] async fn`, checked to be `Send` where the macro calls it.
pub fn send_future<F: SendFuture>(future: F) -> F {
    future
}

/// A future a worker's runtime may move between threads.
#[diagnostic::on_unimplemented(
    message = "the future of this `#[dj::job] async fn` is not `Send`",
    label = "this `async fn` holds something that is not `Send` across an `.await`",
    note = "a worker runs async jobs on a multi-threaded runtime: drop values such as `Rc`, `RefCell` borrows or `std::sync::MutexGuard` before the next `.await`, or use `Arc` / `tokio::sync::Mutex`"
)]
pub trait SendFuture: std::future::Future + Send {}

impl<F: std::future::Future + Send> SendFuture for F {}
