//! State functions: how a worker builds its application [`State`] inside its own tokio
//! runtime, before the first job ([`crate::Worker::state_with`], `dj::main!(state)`).
//!
//! A state function has one of three shapes ([`StateFn`]); each becomes one
//! [`StateBuilder`], which the worker calls at the start of every run with the runtime
//! entered, and whose future it spawns there, waiting for it.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt as _;

use crate::context::State;
use crate::db::Db;
use crate::error::{Error, Result};

/// What a state function is given: the job database the worker works, and the URL it was
/// opened with, so that the application's own pool connects where dj does.
///
/// In a `dj::main!` worker the URL is the one dj resolved: `--database-url`, else
/// `DATABASE_URL`, else the default SQLite file. A state function that reads `DATABASE_URL`
/// itself would miss `--database-url`.
#[derive(Debug, Clone)]
pub struct Setup {
    db: Db,
}

impl Setup {
    pub(crate) fn new(db: Db) -> Self {
        Setup { db }
    }
    /// The job database's URL as given (`postgres://user:password@host/db?...` or
    /// `sqlite:path`), password included, to open the application's own pool with:
    /// `PgPool::connect(setup.database_url())`. dj's own keys (`pool_size`, `pooler`,
    /// `statement_timeout`, ...) are left in it; sqlx ignores keys it does not know, with a
    /// warning in the log.
    pub fn database_url(&self) -> &str {
        self.db.opened_with()
    }
    /// The job database (to enqueue at start, say).
    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// A state function's error, boxed: any `std::error::Error + Send + Sync` converts into it
/// (so do `anyhow::Error` and `String`).
type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The future a state function runs to, boxed. Not part of the API.
#[doc(hidden)]
pub type StateFuture = Pin<Box<dyn Future<Output = Result<State, BoxError>> + Send>>;

/// A state function of any shape, called once per run. Not part of the API.
#[doc(hidden)]
pub type StateBuilder = Arc<dyn Fn(Setup) -> StateFuture + Send + Sync>;

/// A function that builds the worker's [`State`]: what `dj::main!(state)` and
/// [`crate::Worker::state_with`] take. One of:
///
/// | shape | use |
/// |---|---|
/// | `fn state() -> dj::State` | values that need nothing from dj |
/// | `fn state(setup: dj::Setup) -> Result<dj::State, E>` | a sync pool (r2d2, `postgres`) on dj's database |
/// | `async fn state(setup: dj::Setup) -> Result<dj::State, E>` | an async pool: `sqlx::PgPool::connect(setup.database_url()).await?` |
///
/// `E` is any error that converts into `Box<dyn std::error::Error + Send + Sync>`: a
/// `sqlx::Error`, a [`crate::Error`], `anyhow::Error`, a `String`. The worker calls the
/// function at the start of each run, inside the tokio runtime its async jobs run on (which it
/// starts for this even if no job is async), before it claims anything: so a pool's
/// connections and background tasks belong to that runtime, and `connect_lazy` works in a
/// sync one too. An async one runs as a task of that runtime (its future must be `Send`, as
/// an async job's), where dj's sync API works as well. An `Err` stops the worker at start with
/// [`crate::Error::State`]; a panic goes on in the thread that started the worker. The
/// `Marker` parameter only tells the shapes apart; it is never written.
///
/// `()` stands for no state function: the worker's state stays empty.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a state function",
    label = "expected a function building the worker's `dj::State`",
    note = "write `fn state() -> dj::State`, `fn state(setup: dj::Setup) -> Result<dj::State, E>` or `async fn state(setup: dj::Setup) -> Result<dj::State, E>`, with `E` any `std::error::Error + Send + Sync`; an async one's future must be `Send`, as an async job's"
)]
pub trait StateFn<Marker> {
    /// The builder, or `None` for no state function. Not part of the API.
    #[doc(hidden)]
    fn into_builder(self) -> Option<StateBuilder>;
}

#[diagnostic::do_not_recommend]
impl StateFn<()> for () {
    fn into_builder(self) -> Option<StateBuilder> {
        None
    }
}

impl<F> StateFn<fn() -> State> for F
where
    F: Fn() -> State + Send + Sync + 'static,
{
    fn into_builder(self) -> Option<StateBuilder> {
        Some(Arc::new(move |_: Setup| -> StateFuture {
            Box::pin(std::future::ready(Ok(self())))
        }))
    }
}

impl<F, E> StateFn<fn(Setup) -> Result<State, E>> for F
where
    F: Fn(Setup) -> Result<State, E> + Send + Sync + 'static,
    E: Into<BoxError>,
{
    fn into_builder(self) -> Option<StateBuilder> {
        Some(Arc::new(move |setup: Setup| -> StateFuture {
            Box::pin(std::future::ready(self(setup).map_err(Into::into)))
        }))
    }
}

/// Marks the async shape of [`StateFn`]. Never written.
#[doc(hidden)]
#[derive(Debug)]
pub struct Async<Fut, E>(PhantomData<fn() -> (Fut, E)>);

impl<F, Fut, E> StateFn<Async<Fut, E>> for F
where
    F: Fn(Setup) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<State, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn into_builder(self) -> Option<StateBuilder> {
        Some(Arc::new(move |setup: Setup| -> StateFuture {
            let future = self(setup);
            Box::pin(async move { future.await.map_err(Into::into) })
        }))
    }
}

/// Where a worker's state comes from: given built, or built by a state function at each run.
#[derive(Clone)]
pub(crate) enum StateSource {
    Ready(Arc<State>),
    Build(StateBuilder),
}

impl StateSource {
    /// Whether a state function must run (and so the worker needs its runtime).
    pub(crate) fn builds(&self) -> bool {
        matches!(self, StateSource::Build(_))
    }

    /// The state for one run: the given one, or the state function's, called with `runtime`
    /// entered and its future run as a task there. This thread waits without polling
    /// anything, so a worker started inside another runtime or executor does not panic, and
    /// the future may use dj's sync API (which blocks on an executor of its own).
    pub(crate) fn get(
        &self,
        db: &Db,
        runtime: Option<&tokio::runtime::Handle>,
    ) -> Result<Arc<State>> {
        match (self, runtime) {
            (StateSource::Ready(state), _) => Ok(state.clone()),
            (StateSource::Build(build), Some(runtime)) => {
                // Entered for the call too: a sync state function's `connect_lazy` spawns.
                let future = {
                    let _context = runtime.enter();
                    build(Setup::new(db.clone()))
                };
                let (done, result) = std::sync::mpsc::sync_channel(1);
                runtime.spawn(async move {
                    let _ = done.send(AssertUnwindSafe(future).catch_unwind().await);
                });
                match result
                    .recv()
                    .expect("the state function's task sends its result")
                {
                    Ok(state) => state.map(Arc::new).map_err(Error::State),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            (StateSource::Build(_), None) => {
                unreachable!("a worker with a state function starts its runtime")
            }
        }
    }
}

impl fmt::Debug for StateSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateSource::Ready(state) => f.debug_tuple("Ready").field(state).finish(),
            StateSource::Build(_) => f.write_str("Build(state function)"),
        }
    }
}
