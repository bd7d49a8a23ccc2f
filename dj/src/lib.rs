//! # dj: delayed_job for Rust
//!
//! Background jobs stored as rows of a `delayed_jobs` table in your own database
//! (PostgreSQL, or an embedded SQLite file), performed later by worker processes.
//!
//! ```
//! use dj::{Job, Perform};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Job, Serialize, Deserialize)]
//! #[job(queue = "mail", max_attempts = 5)]
//! struct SendWelcome {
//!     user_id: i64,
//! }
//!
//! impl Perform for SendWelcome {
//!     type Error = std::io::Error;
//!     fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
//!         println!("welcome, user {}", self.user_id);
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), dj::Error> {
//! # let dir = std::env::temp_dir().join(format!("dj-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let url = format!("sqlite:{}", dir.join("quickstart.db").display());
//! let db = dj::Db::open(&url)?;          // or dj::Db::from_env(): DATABASE_URL, else dj.sqlite3
//! db.migrate()?;
//! let id = SendWelcome { user_id: 7 }.delay().priority(3).enqueue(&db)?;
//! assert!(db.job(id)?.is_some());        // stored, not run yet
//!
//! let report = dj::Worker::new(db.clone()).work_off(100)?;
//! assert_eq!(report.succeeded, 1);
//! assert!(db.job(id)?.is_none());        // performed and deleted
//! # Ok(())
//! # }
//! ```
//!
//! A worker binary is one line, `dj::main!();`, which generates the whole CLI
//! (`work`, `workoff`, `migrate`, `schema`, `jobs`, `show`, ...). See the README.
//!
//! ## Concepts
//!
//! - A **job** is a type with `#[derive(Job)]` and an implementation of [`Perform`] (or
//!   [`PerformAsync`]), or a function with `#[dj::job]`. Deriving registers the type at
//!   compile time, so any worker built with it can load and perform its rows.
//! - A **[`Db`]** is the handle on the `delayed_jobs` table: open it from a URL
//!   (`postgres://...` or `sqlite:path`), size it with [`Db::builder`], clone it freely.
//! - **Enqueue** with `job.delay()` ([`Delayed`]): options, then `.enqueue(&db)` (or the
//!   caller's own transaction), [`enqueue_many`] for many at once, and, with feature `tokio`,
//!   `Delayed::enqueue_async` and `enqueue_many_async`.
//! - A **[`Worker`]** claims and performs jobs with delayed_job's semantics (priorities,
//!   `run_at`, retries with backoff, `max_run_time`), heartbeats in `dj_workers`, and tells a
//!   watching program what it does ([`Worker::on_event`]). Its log lines go through
//!   `tracing`: a library worker is silent until the program installs a subscriber.
//! - Jobs reach application state (a pool, a client) through their [`Context`]: build a
//!   [`State`] once and give it to the worker.
//! - [`testing`] runs jobs inline or checks what was enqueued.
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `postgres` | yes | the PostgreSQL backend (tokio-postgres) |
//! | `sqlite` | yes | the SQLite backend (rusqlite, bundled) |
//! | `mysql` | no | the MySQL / MariaDB backend (the `mysql` crate); `enqueue` onto `&mut mysql::Transaction` and `&mut mysql::Conn` |
//! | `cli` | yes | `dj::main!()`, the worker binary's command line and log output (clap, tracing-subscriber) |
//! | `web` | yes | the dashboard and `/metrics` (`worker web`, `dj::web::router`; axum, minijinja); implies `cli` |
//! | `tokio` | no | `Delayed::enqueue_async` and `enqueue_many_async` onto `&Db` |
//! | `tokio-postgres` | no | async enqueue onto `&tokio_postgres::Client` / `Transaction` |
//! | `sqlx-postgres`, `sqlx-sqlite`, `sqlx-mysql` | no | async enqueue onto sqlx transactions and connections |
//! | `diesel-postgres`, `diesel-sqlite` | no | `enqueue` onto diesel connections, in their transaction |
//!
//! ## Layers
//!
//! How dj is built, for its readers: each module imports only from its own layer and the
//! layers above it in this table, and no two modules import each other around a circle
//! (`tests/tests/layers.rs` reads every `crate::` path in `dj/src` and checks both).
//!
//! | layer | modules | what they hold |
//! |---|---|---|
//! | 0 rules | `error`, `rules`, `duration`, `validate`, `backoff`, `stop`, `io`, `block`, `time` | errors, the queue-name and duration rules, backoff, the stop flag, runtime helpers |
//! | 1 model | `model` | job ids, rows and states, filters, the new row and its outcome, the `Delayed` builder, stored schedules |
//! | 2 store | `store` | the `Store` trait and its parameter structs; the PostgreSQL and SQLite backends |
//! | 3 db | `db`, `results` | [`Db`], the handle an application holds; reading and awaiting jobs' results |
//! | 4 jobs | `job`, `context`, `complete`, `crypt`, `progress`, `trace`, `registry`, `handler`, `row`, `setup`, `__private` | the job traits, the context and what it completes in and reports to, the registry, the stored-handler format, how a job becomes a row |
//! | 5 enqueue | `enqueue`, `enqueue_async`, `cron`, `workflow`, `batch` | enqueueing, recurring jobs, workflows and batches |
//! | 6 worker | `worker` | the worker's roles: producer, executor, completer, rescuer, ... |
//! | 7 apps | `testing`, `cli`, `web` | what applications and operators run |
//!
//! An app that only enqueues can take `default-features = false, features = ["postgres"]`;
//! the README has a table of the features to pick for each kind of app.

#![warn(missing_docs)]

mod backoff;
mod batch;
mod block;
#[cfg(feature = "cli")]
pub mod cli;
mod complete;
mod context;
mod cron;
pub mod crypt;
mod db;
mod duration;
mod enqueue;
#[cfg(feature = "tokio")]
mod enqueue_async;
mod error;
mod handler;
mod io;
mod job;
mod model;
mod progress;
mod registry;
mod results;
mod row;
mod rules;
mod setup;
mod stop;
#[doc(hidden)] // internals (the claim SQL is read by dj's tests and benchmarks)
pub mod store;
pub mod testing;
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
mod time;
pub mod trace;
mod validate;
#[cfg(feature = "web")]
pub mod web;
#[doc(hidden)] // its public types are re-exported below; the rest are internals
pub mod worker;
mod workflow;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use batch::{Batch, BatchRun};
#[cfg(feature = "tokio")]
pub use complete::CompleteAsyncTarget;
pub use complete::CompleteTarget;
pub use context::{Context, JobInfo, State, MAX_RESULT_BYTES};
pub use cron::Schedule;
pub use db::{database_url, schema_sql, Db, DbBuilder, DEFAULT_DATABASE_URL};
pub use dj_macros::{job, Job};
pub use enqueue::{enqueue_many, enqueue_many_outcomes, EnqueueTarget};
#[cfg(feature = "tokio")]
pub use enqueue_async::{enqueue_many_async, enqueue_many_outcomes_async, EnqueueAsyncTarget};
pub use error::{Error, Result};
pub use job::{Job, JobError, JobOptions, Message, Perform, PerformAsync, Stored};
pub use model::{
    Attempt, Cancel, Delayed, EnqueueOutcome, JobFilter, JobId, JobResult, JobRow, JobState,
    Missed, OnDuplicate, Order, Progress, QueueStats, Rate, RateLimit, RateScope, ScheduleRow,
    StepInfo, StepRuns, StepState, WorkerRow, WorkflowCancel, WorkflowId, WorkflowInfo,
    WorkflowRun, WorkflowState, MAX_ATTEMPTS_KEPT, MAX_ATTEMPT_ERROR_BYTES,
    MAX_PROGRESS_MESSAGE_BYTES,
};
pub use setup::{Setup, StateFn};
pub use stop::StopFlag;
pub use validate::MAX_QUEUE_NAME;
pub use worker::{Event, JobOutcome, Report, Worker, WorkerConfig};
pub use workflow::{Workflow, WorkflowStep};

/// The old name of [`WorkerConfig`].
#[deprecated(
    since = "0.1.0",
    note = "renamed to `WorkerConfig`: the settings of a `Worker`"
)]
pub type Config = WorkerConfig;

/// The largest `handler` dj stores: 1 MiB of JSON. Larger payloads are refused at enqueue
/// with [`Error::PayloadTooLarge`]; store big data elsewhere and enqueue a key to it.
pub const MAX_HANDLER_BYTES: usize = 1 << 20;

/// The longest `last_error` dj writes: 64 KiB; a longer report is cut and says how long it was.
pub const MAX_LAST_ERROR_BYTES: usize = 64 * 1024;

/// Rows per insert statement in [`enqueue_many`].
pub const INSERT_BATCH: usize = 5_000;

/// Generates `fn main()` for a worker binary: the whole dj CLI. Pass the function that builds
/// the [`State`] jobs see through their [`Context`], if they need one ([`StateFn`]):
///
/// ```ignore
/// dj::main!();                 // no application state
/// dj::main!(my_app::state);    // fn state() -> dj::State
///                              // fn state(setup: dj::Setup) -> Result<dj::State, E>
///                              // async fn state(setup: dj::Setup) -> Result<dj::State, E>
/// ```
///
/// `work` and `workoff` call it once, inside the tokio runtime the worker's async jobs run on,
/// before the first job; [`Setup::database_url`] is the URL dj resolved (`--database-url`, else
/// `DATABASE_URL`, else the default). An `Err` stops the worker at start: it exits non-zero
/// with `error: the worker's state function failed, ...` and the error. The other commands
/// never call it.
#[cfg(feature = "cli")]
#[macro_export]
macro_rules! main {
    () => {
        fn main() -> ::std::process::ExitCode {
            $crate::cli::main(())
        }
    };
    ($state:expr) => {
        fn main() -> ::std::process::ExitCode {
            $crate::cli::main($state)
        }
    };
}

/// `dj::main!()` needs the `cli` feature (on by default); without it, this says so.
#[cfg(not(feature = "cli"))]
#[macro_export]
macro_rules! main {
    ($($state:expr)?) => {
        ::core::compile_error!(
            "`dj::main!()` generates the worker CLI, which needs dj's `cli` feature: add \"cli\" to dj's features"
        );
    };
}
