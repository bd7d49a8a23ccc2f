//! What the macros' generated code reaches, and nothing else: `::dj::__private::...`.
//! Not part of dj's public API; it may change in any release.

pub use crate::job::{Job, JobOptions};
pub use crate::registry::Registration;
pub use inventory;
pub use serde;
pub use std::time::Duration;

/// A unique or concurrency key built by `#[job(unique = ..)]`: the values as JSON.
pub fn key_of<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

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

/// A `#[job(cron = ..)]` schedule, submitted by the macro; every worker adds it to `dj_cron`
/// at start.
#[derive(Debug)]
pub struct CronRegistration {
    pub(crate) name: &'static str,
    pub(crate) expression: &'static str,
    pub(crate) tz: &'static str,
    pub(crate) skip_missed: bool,
    pub(crate) row: fn() -> crate::Result<crate::model::NewJob>,
}

impl CronRegistration {
    /// The schedule of `J`, whose jobs are `J::default()`.
    pub const fn of<J: CronJob>(
        expression: &'static str,
        tz: &'static str,
        skip_missed: bool,
    ) -> Self {
        CronRegistration {
            name: J::NAME,
            expression,
            tz,
            skip_missed,
            row: default_row::<J>,
        }
    }
}

inventory::collect!(CronRegistration);

/// The row of `J::default()`, made as `enqueue` makes rows.
fn default_row<J: CronJob>() -> crate::Result<crate::model::NewJob> {
    crate::row::row_of(&J::default(), crate::model::RowOptions::default())
}

/// A job a schedule can build with no input.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has `#[job(cron = ..)]` but cannot be built without input",
    label = "a recurring job is built with `Default::default()`",
    note = "add `#[derive(Default)]` to `{Self}` (or implement `Default`), or give a schedule its own arguments at run time with `dj::Schedule::new(name, expression, &job)` and `db.add_schedule(..)`"
)]
pub trait CronJob: Job + Default {}

impl<T: Job + Default> CronJob for T {}
