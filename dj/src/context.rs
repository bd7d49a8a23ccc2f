//! What a running job can reach: its own row's facts, the application's state, the database.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::db::Db;

/// Application state shared by every job of a worker: a connection pool, an HTTP client,
/// configuration. Built once at worker start; jobs read it through [`Context::get`] and
/// [`Context::state`].
///
/// Values are shared by all the worker's threads at once, so they are `Send + Sync`: put a
/// pool there (cheap to clone, one connection per job at a time), not a `Mutex<Client>`,
/// which would run the jobs one at a time.
///
/// Where to build it: a state that needs nothing from a runtime (an r2d2 pool, a
/// `reqwest::blocking::Client`, configuration) can be built anywhere and given with
/// [`crate::Worker::state`]. An async pool (sqlx, deadpool, bb8) belongs to the tokio runtime
/// it is made on: build it in a state function ([`crate::StateFn`], given to `dj::main!` or
/// [`crate::Worker::state_with`]), which the worker runs inside the runtime its async jobs
/// run on, before the first job, with the database URL it resolved:
///
/// ```ignore
/// async fn state(setup: dj::Setup) -> Result<dj::State, sqlx::Error> {
///     let pool = sqlx::PgPool::connect(setup.database_url()).await?;
///     Ok(dj::State::new().with(pool))
/// }
///
/// dj::main!(state);    // jobs: `ctx.state::<sqlx::PgPool>()`
/// ```
///
/// Sync jobs run with that runtime entered, so they reach the same pool with
/// `tokio::runtime::Handle::current().block_on(query.execute(pool))`.
///
/// ```
/// use dj::{Context, Job, Perform, State};
/// use serde::{Deserialize, Serialize};
///
/// /// Stands for a connection pool (an r2d2 pool in a real app; an async pool is built in a
/// /// state function, above).
/// struct Pool {
///     url: String,
/// }
///
/// #[derive(Job, Serialize, Deserialize)]
/// struct Report {
///     day: String,
/// }
///
/// impl Perform for Report {
///     type Error = std::io::Error;
///     fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
///         let pool: &Pool = ctx.state();
///         assert_eq!(pool.url, "postgres://reports");
///         Ok(())
///     }
/// }
///
/// # fn main() -> Result<(), dj::Error> {
/// # let dir = std::env::temp_dir().join(format!("dj-doc-state-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display()))?;
/// db.migrate()?;
/// Report { day: "monday".into() }.delay().enqueue(&db)?;
/// let state = State::new().with(Pool { url: "postgres://reports".into() });
/// let report = dj::Worker::new(db).state(state).work_off(10)?;
/// assert_eq!(report.succeeded, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Default, Clone)]
pub struct State {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl State {
    /// Empty state.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a value, replacing any earlier value of the same type.
    pub fn with<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.insert(value);
        self
    }
    /// Adds a value, replacing any earlier value of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
    }
    /// The value of type `T`, if one was added.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("values", &self.values.len())
            .finish()
    }
}

/// Facts about the job being performed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// The row's id (0 for a job performed inline by `dj::testing`).
    pub id: i64,
    /// The stored job name.
    pub name: String,
    /// The queue, if any.
    pub queue: Option<String>,
    /// The priority.
    pub priority: i32,
    /// Failed attempts so far (0 on the first run).
    pub attempts: u32,
    /// Snoozes so far ([`crate::JobError::snooze`]; they are not attempts).
    pub snoozes: u32,
    /// When this attempt's worker claimed the row, by the database's clock (`locked_at`): the
    /// instant a rate limit counts as its start. `None` inline (`dj::testing`).
    pub claimed_at: Option<std::time::SystemTime>,
}

/// A running job's cancel request (`worker cancel ID`, [`Db::cancel`]): set once by the
/// worker, read by the job through [`Context::is_cancelled`] or awaited with
/// [`Context::cancelled`].
#[derive(Debug, Default)]
pub(crate) struct CancelSignal {
    set: AtomicBool,
    notify: tokio::sync::Notify,
}

impl CancelSignal {
    pub(crate) fn cancel(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

/// Passed to every `perform` and hook: the job's facts, the worker's [`State`] and [`Db`].
pub struct Context {
    pub(crate) job: JobInfo,
    pub(crate) state: Arc<State>,
    pub(crate) db: Option<Db>,
    pub(crate) cancel: Arc<CancelSignal>,
    /// The value [`Context::set_result`] recorded, as JSON text.
    result: Mutex<Option<String>>,
    /// The claim a worker runs the job under: what [`Context::complete_in`] checks.
    claim: Option<Claim>,
    /// Set once [`Context::complete_in`] has deleted the row in the job's transaction.
    completed: AtomicBool,
    /// Where [`Context::progress`] reports go, when a worker runs the job.
    progress: Option<crate::progress::Reporter>,
}

/// The worker holding a job, and whether the job's type completes its row in its own
/// transaction (`#[job(transactional = true)]`).
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub(crate) worker: Arc<str>,
    pub(crate) transactional: bool,
}

/// The largest result a job may record ([`Context::set_result`]), in bytes of JSON: 64 KiB.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

impl Context {
    pub(crate) fn new(job: JobInfo, state: Arc<State>, db: Option<Db>) -> Self {
        Context {
            job,
            state,
            db,
            cancel: Arc::default(),
            result: Mutex::default(),
            claim: None,
            completed: AtomicBool::new(false),
            progress: None,
        }
    }
    /// The context of a job whose progress reports go to `reporter`.
    pub(crate) fn reporting(mut self, reporter: crate::progress::Reporter) -> Self {
        self.progress = Some(reporter);
        self
    }
    /// Says how far the job is: `fraction` from 0.0 to 1.0 (clamped; NaN is 0.0) and a short
    /// message (cut to [`crate::MAX_PROGRESS_MESSAGE_BYTES`]), shown by the dashboard and
    /// `worker top` while the job runs ([`Db::job_progress`]). Cheap enough to call in a
    /// tight loop: it replaces the job's latest report in memory, and the worker writes the
    /// latest of each job at most once a second, deleting it when the job ends. Outside a
    /// worker (inline test mode) it does nothing.
    pub fn progress(&self, fraction: f64, message: &str) {
        if let Some(reporter) = &self.progress {
            reporter.board.report(reporter.id, fraction, message);
        }
    }
    /// The context of a job a worker runs, under its claim.
    pub(crate) fn claimed(mut self, claim: Claim) -> Self {
        self.claim = Some(claim);
        self
    }
    /// Records the job's result: if this attempt succeeds, the value is stored (as JSON, in
    /// `dj_results`, in the transaction that completes the job) for the app to read with
    /// [`Db::job_result`] or await with `Db::wait_for_result_async`, until the worker's
    /// `result_retention` has passed. A later call replaces the value; an attempt that fails
    /// stores nothing. Fails, storing nothing, when the value does not serialize or its JSON
    /// is over [`MAX_RESULT_BYTES`].
    pub fn set_result<T: Serialize + ?Sized>(&self, value: &T) -> crate::Result<()> {
        let json = serde_json::to_string(value).map_err(|e| {
            crate::Error::Invalid(format!(
                "job {} (id={}): its result does not serialize to JSON: {e}",
                self.job.name, self.job.id
            ))
        })?;
        if self.completed.load(Ordering::SeqCst) {
            return Err(crate::Error::Invalid(format!(
                "job {} (id={}): set_result after complete_in: the result is written with the \
                 completion; call set_result first",
                self.job.name, self.job.id
            )));
        }
        if json.len() > MAX_RESULT_BYTES {
            return Err(crate::Error::Invalid(format!(
                "job {} (id={}): its result serializes to {} bytes, over dj's limit of \
                 {MAX_RESULT_BYTES} bytes; store large data elsewhere and record a key to it",
                self.job.name,
                self.job.id,
                json.len()
            )));
        }
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(json);
        Ok(())
    }
    /// The result that step `step` of this job's workflow recorded ([`Context::set_result`]),
    /// as a `T`: a workflow step reads its dependencies' outputs this way. Errors: this job
    /// is no workflow step or its workflow has no step `step` ([`crate::Error::Invalid`]),
    /// that step has not succeeded or recorded nothing ([`crate::Error::NoResult`],
    /// [`crate::Error::JobFailed`]), or its value is not a `T`. Not in `dj::testing`'s
    /// inline mode, which stores nothing.
    pub fn dependency_result<T: serde::de::DeserializeOwned>(
        &self,
        step: &str,
    ) -> crate::Result<T> {
        let job = &self.job;
        let no_step = || {
            crate::Error::Invalid(format!(
                "job {} (id={}) read the result of step `{step}`, but it is not a step of a \
                 workflow that has a step by that name",
                job.name, job.id
            ))
        };
        let db = self.db.as_ref().ok_or_else(no_step)?;
        let id = (db.store().workflow_dependency(job.id, step)?).ok_or_else(no_step)?;
        db.job_result(id)?.value(id)
    }
    /// The workflow or batch this job is a step of, if any: a batch's job adds more jobs to
    /// its own batch with `ctx.db()` and [`Db::add_to_batch`] (its batch is open while it
    /// runs). `None` inline (`dj::testing`).
    pub fn workflow_id(&self) -> crate::Result<Option<crate::WorkflowId>> {
        match &self.db {
            Some(db) => db.store().workflow_of(self.job.id),
            None => Ok(None),
        }
    }
    /// The recorded result, taken.
    pub(crate) fn take_result(&self) -> Option<String> {
        self.result.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
    /// Completes the job in the caller's own database transaction, so that the job's writes
    /// and its completion commit together or not at all: exactly-once effects in dj's own
    /// database, whatever kills a worker or its connection. The job's type is marked
    /// `#[job(transactional = true)]`; inside its transaction, after its writes, `perform`
    /// calls this, then commits:
    ///
    /// ```no_run
    /// use dj::{Context, Job, JobError, Perform};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Job, Serialize, Deserialize)]
    /// #[job(transactional = true)]
    /// struct Credit { account: i64, cents: i64 }
    ///
    /// impl Perform for Credit {
    ///     type Error = JobError;
    ///     fn perform(&self, ctx: &Context) -> Result<(), JobError> {
    ///         let url = dj::database_url(None);
    ///         let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
    ///         let mut tx = client.transaction()?;
    ///         let sql = "UPDATE accounts SET cents = cents + $1 WHERE id = $2";
    ///         tx.execute(sql, &[&self.cents, &self.account])?;
    ///         ctx.complete_in(&mut tx)?;
    ///         tx.commit()?;
    ///         Ok(())
    ///     }
    /// }
    /// ```
    ///
    /// The row is deleted in that transaction (with the result recorded by
    /// [`Context::set_result`] before this call) only while this worker still holds the job
    /// and is still registered; otherwise it fails with [`crate::Error::NotHeld`] (on
    /// PostgreSQL the transaction is aborted too, so that it cannot commit): return that error
    /// and the transaction rolls back, and the job runs again elsewhere. Once the transaction
    /// has committed the job is done, whatever `perform` returns after; if it was rolled back
    /// instead, the attempt fails and is retried as any other.
    ///
    /// Targets: [`crate::CompleteTarget`]. On the database dj's workers use, through the
    /// driver the app uses (its url: [`crate::Setup::database_url`]). A SQLite transaction is
    /// begun `IMMEDIATE`. In `dj::testing`'s inline mode (no row) it does nothing.
    pub fn complete_in<T: crate::CompleteTarget>(&self, mut target: T) -> crate::Result<()> {
        let Some(pending) = self.completion()? else {
            return Ok(());
        };
        target.complete_job(&pending.completion())?;
        self.completed.store(true, Ordering::SeqCst);
        Ok(())
    }
    /// [`Context::complete_in`] for an async job, through the caller's async transaction
    /// ([`crate::CompleteAsyncTarget`]: `tokio-postgres`, sqlx).
    #[cfg(feature = "tokio")]
    pub async fn complete_in_async<T: crate::CompleteAsyncTarget>(
        &self,
        target: T,
    ) -> crate::Result<()> {
        let Some(pending) = self.completion()? else {
            return Ok(());
        };
        target.complete_job_async(pending.completion()).await?;
        self.completed.store(true, Ordering::SeqCst);
        Ok(())
    }
    /// The completion to send (the row, its worker and the recorded result); `None` with no
    /// row to complete (inline). Fails for a type not marked transactional, whose jobs a worker may
    /// hold in a fast lane (whose transaction would block this one's delete), and on a
    /// second call.
    fn completion(&self) -> crate::Result<Option<crate::complete::Pending>> {
        let Some(claim) = &self.claim else {
            return Ok(None);
        };
        if !claim.transactional {
            return Err(crate::Error::Invalid(format!(
                "job {} (id={}) called complete_in, but its type is not marked \
                 `#[job(transactional = true)]`: add it, so that workers claim its jobs in a \
                 way its transaction can complete",
                self.job.name, self.job.id
            )));
        }
        if self.completed.load(Ordering::SeqCst) {
            return Err(crate::Error::Invalid(format!(
                "job {} (id={}) called complete_in twice",
                self.job.name, self.job.id
            )));
        }
        let value = self
            .result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(Some(crate::complete::Pending {
            id: self.job.id,
            worker: claim.worker.clone(),
            value,
        }))
    }
    /// The worker, if [`Context::complete_in`] deleted the row in the job's transaction
    /// (which may or may not have committed).
    pub(crate) fn completed_in_transaction(&self) -> Option<&str> {
        let claim = self.claim.as_ref()?;
        self.completed
            .load(Ordering::SeqCst)
            .then_some(&*claim.worker)
    }
    /// True once the job has been cancelled (`worker cancel ID`, [`Db::cancel`]), within a
    /// second of the request. A long sync job checks it and returns early; whatever it then
    /// returns, an `Err` fails the job for good as "cancelled" (a job that finished its work
    /// anyway may return `Ok`). An async job's future is dropped at the request, so it needs
    /// no check.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_set()
    }
    /// Completes when the job is cancelled: for an async job that wants to clean up first
    /// (`tokio::select!` on it beside its work) rather than have its future dropped.
    pub async fn cancelled(&self) {
        self.cancel.wait().await
    }
    /// The job being performed.
    pub fn job(&self) -> &JobInfo {
        &self.job
    }
    /// The application's value of type `T`, if the worker's [`State`] has one.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.state.get()
    }
    /// The application's value of type `T`. Panics (failing the attempt, which is recorded)
    /// with a message naming `T` when the worker's state lacks it.
    pub fn state<T: Any + Send + Sync>(&self) -> &T {
        self.get().unwrap_or_else(|| {
            panic!(
                "dj: the worker's state has no `{}`; add it in the state function passed to `dj::main!` or `Worker::state_with` (`State::new().with(value)`)",
                std::any::type_name::<T>()
            )
        })
    }
    /// The job database (to enqueue follow-up jobs). `None` only for a job performed inline
    /// by `dj::testing` inside the caller's own transaction.
    pub fn db(&self) -> Option<&Db> {
        self.db.as_ref()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("job", &self.job).finish()
    }
}
