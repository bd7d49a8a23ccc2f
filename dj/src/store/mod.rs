//! The store: one trait that every backend implements, with noun-first methods taking
//! parameter structs. The worker, the CLI and `dj::testing` talk only to this trait; the same
//! conformance suite (`tests/conformance`) runs against every backend.

use std::time::{Duration, SystemTime};

use crate::error::Result;
use crate::model::NewWorkflow;
use crate::model::{
    Cancel, EnqueueOutcome, JobFilter, JobId, JobResult, JobRow, NewJob, QueueStats, Rate,
    RateLimit, RateScope, ScheduleDef, ScheduleRow, StepState, StoredRate, WorkerRow,
    WorkflowCancel, WorkflowId, WorkflowInfo, WorkflowRun, WorkflowState,
};
use crate::stop::StopFlag;

pub(crate) mod filter;
pub(crate) mod workflow;

/// The id an insert returns, as diesel's `sql_query` loads it (PostgreSQL, SQLite).
#[cfg(any(feature = "diesel-postgres", feature = "diesel-sqlite"))]
#[derive(diesel::QueryableByName)]
pub(crate) struct InsertedId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub(crate) outcome: i32,
}
#[cfg(feature = "mysql")]
pub(crate) mod mysql;
pub(crate) mod pool;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// A value a blocking backend's insert binds (SQLite, MySQL), with the type every driver
/// library binds it as.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
pub(crate) enum Value<'a> {
    Text(Option<&'a str>),
    Int(Option<i32>),
    Real(Option<f64>),
    Bool(bool),
    /// A row's id (MySQL's transactional completion binds it).
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    Id(i64),
}

/// A row's values in the order of SQLite's and MySQL's one insert (`INSERT_ROW`): name,
/// handler, priority, queue, absolute run time (unix seconds) or none, delay in seconds from
/// the database's now, max_run_time, concurrency key and limit, rate (starts and period),
/// unique key and whether it is held until done.
#[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
pub(crate) fn insert_values(row: &NewJob) -> [Value<'_>; 13] {
    let (at, delay) = row.run_at.values();
    let concurrency = row.concurrency.as_ref();
    let unique = row.unique.as_ref();
    [
        Value::Text(Some(row.name)),
        Value::Text(Some(&row.handler)),
        Value::Int(Some(row.priority)),
        Value::Text(row.queue.as_deref()),
        Value::Real(at),
        Value::Real(Some(delay)),
        Value::Int(row.max_run_time),
        Value::Text(concurrency.map(|(key, _)| key.as_str())),
        Value::Int(concurrency.map(|(_, limit)| *limit)),
        Value::Int(row.rate.map(|rate| rate.max_starts)),
        Value::Int(row.rate.map(|rate| rate.period_ms)),
        Value::Text(unique.map(|u| u.key.as_str())),
        Value::Bool(unique.is_some_and(|u| u.until_done)),
    ]
}

/// How an idle worker waits on a backend without LISTEN (SQLite, MySQL): `read` gives the
/// backend's wake-up number (a number that moves whenever rows may have become claimable),
/// read every `poll` after `seen`: true as soon as it differs from `seen`, false after
/// `timeout` or once `stop` is set. With no `seen` (the number cannot be read) it sleeps.
#[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
pub(crate) fn wait_for_wakeup(
    seen: Option<i64>,
    read: impl Fn() -> Option<i64>,
    poll: Duration,
    timeout: Duration,
    stop: &StopFlag,
) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    let Some(seen) = seen else {
        stop.sleep(timeout);
        return false;
    };
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || stop.is_set() {
            return false;
        }
        stop.sleep(left.min(poll));
        if read().is_some_and(|now| now != seen) {
            return !stop.is_set();
        }
    }
}

/// The output of an insert on a blocking library, whose statements are ready futures: it is
/// done in one poll.
#[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
pub(crate) fn blocking<T>(insert: impl std::future::Future<Output = T>) -> T {
    use std::task::{Context, Poll, Waker};
    match std::pin::pin!(insert).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("a blocking library's statements never wait"),
    }
}

/// A database URL as dj shows it: `scheme://user:secret@host/db` becomes
/// `scheme://user:***@host/db`.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn hide_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    // The user part ends at the host's `@`, before any path or query (which may hold another
    // URL: `listen_url`).
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// What a [`crate::DbBuilder`] sets, for the backend to apply over the URL's keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Options {
    pub(crate) pool_size: Option<usize>,
    pub(crate) pool_timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) application_name: Option<String>,
    pub(crate) listen_url: Option<String>,
}

/// Why jobs cannot be added to workflow `id` (its `kind` and `state`; `fired` of its
/// callbacks have fired or were cancelled), if they cannot.
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))] // MySQL: not yet
pub(crate) fn batch_closed(id: WorkflowId, kind: &str, state: &str, fired: i64) -> Option<String> {
    if kind != "batch" {
        return Some(format!(
            "workflow {id} is not a batch: a workflow's steps are all given at enqueue"
        ));
    }
    if state != "running" || fired > 0 {
        return Some(format!(
            "batch {id} is {}: its callbacks have fired or it was cancelled, so it takes no \
             more jobs; start a new batch",
            if state == "running" { "closing" } else { state }
        ));
    }
    None
}

/// One firing of a schedule (see [`Store::cron_fire`]).
#[derive(Debug)]
pub(crate) struct CronFire<'a> {
    /// The schedule's name.
    pub name: &'a str,
    /// The next fire time the worker read: the compare-and-set's old value.
    pub expected: SystemTime,
    /// The next fire time after these (none: the expression has no later one).
    pub next: Option<SystemTime>,
    /// The last fire time enqueued now, if any.
    pub last: Option<SystemTime>,
    /// The jobs to insert, one per fire time.
    pub jobs: &'a [NewJob],
}

/// What a worker may claim.
#[derive(Debug, Clone)]
pub(crate) struct ClaimParams<'a> {
    pub worker: &'a str,
    /// Empty: every queue, including none.
    pub queues: &'a [String],
    pub min_priority: Option<i32>,
    pub max_priority: Option<i32>,
    pub limit: usize,
    /// The stored names of the job types a fast lane leaves to the ordinary claim (those
    /// marked `transactional`, whose own transaction deletes the row the lane would hold).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))] // only PostgreSQL has lanes
    pub lane_skips: &'a [&'static str],
}

/// What completing a job in the caller's transaction sends: the row, its worker (the claim
/// the statement checks), and the recorded result.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))] // MySQL: not yet
pub struct Completion<'a> {
    pub(crate) id: JobId,
    pub(crate) worker: &'a str,
    /// JSON text, if the job recorded a result.
    pub(crate) value: Option<&'a str>,
}

/// A fast-lane batch while its jobs run: the backend's open transaction holding their rows,
/// and its record (see [`Store::lane_claim`]).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // only PostgreSQL has lanes
pub(crate) struct Lane(pub(crate) Box<dyn std::any::Any + Send>);

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lane")
    }
}

/// What a fast-lane claim took: its rows, and the lane holding them.
#[derive(Debug)]
pub(crate) struct LaneClaim {
    pub rows: Vec<JobRow>,
    pub lane: Lane,
}

/// A failed attempt with attempts left: back to scheduled, unlocked.
#[derive(Debug, Clone)]
pub(crate) struct Retry {
    pub id: JobId,
    pub attempts: i32,
    pub delay: Duration,
    pub last_error: String,
    /// Unlock the row (false: keep the lock, the job is still running past its max_run_time).
    pub release: bool,
    /// A snooze: `attempts` and `last_error` are left as they are, `snoozes` goes up by one.
    pub snoozed: bool,
    /// How long the attempt ran, if the worker measured it (else the history takes the
    /// recorded start).
    pub ran_for: Option<Duration>,
}

/// A permanent failure: the row is deleted or gets `failed_at`.
#[derive(Debug, Clone)]
pub(crate) struct Fail {
    pub id: JobId,
    pub attempts: i32,
    pub last_error: String,
    pub destroy: bool,
    /// As [`Retry::ran_for`].
    pub ran_for: Option<Duration>,
}

/// A failed attempt for the history (`dj_attempts`), recorded with its retry or failure by
/// `job_retry` and `job_fail`, for rows the worker still holds.
#[derive(Debug, Clone)]
pub(crate) struct FailedAttempt {
    pub id: JobId,
    pub attempt: i32,
    /// Cut to `MAX_ATTEMPT_ERROR_BYTES`.
    pub error: String,
    pub ran_for: Option<Duration>,
}

impl FailedAttempt {
    /// The attempts `retries` record: all but snoozes.
    pub(crate) fn of_retries(retries: &[Retry]) -> Vec<FailedAttempt> {
        (retries.iter().filter(|r| !r.snoozed))
            .map(|r| FailedAttempt {
                id: r.id,
                attempt: r.attempts,
                error: crate::model::kept_error(&r.last_error),
                ran_for: r.ran_for,
            })
            .collect()
    }

    /// The attempts `fails` record.
    pub(crate) fn of_fails(fails: &[Fail]) -> Vec<FailedAttempt> {
        (fails.iter())
            .map(|f| FailedAttempt {
                id: f.id,
                attempt: f.attempts,
                error: crate::model::kept_error(&f.last_error),
                ran_for: f.ran_for,
            })
            .collect()
    }
}

/// A job that succeeded having recorded a result: its row deleted, its value (JSON text)
/// kept in `dj_results`, in one transaction.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub id: JobId,
    pub value: String,
}

/// A lane's jobs that succeeded: those without a result and those with one.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // only PostgreSQL has lanes
pub(crate) struct Finished<'a> {
    pub complete: &'a [JobId],
    pub recorded: &'a [Recorded],
}

/// A `dj_results` row's state and its value or error, as the app reads it.
pub(crate) fn stored_result(
    id: JobId,
    state: &str,
    value: Option<String>,
    error: Option<String>,
) -> Result<JobResult> {
    match state {
        "succeeded" => {
            let text = value.unwrap_or_else(|| "null".to_owned());
            serde_json::from_str(&text)
                .map(JobResult::Succeeded)
                .map_err(|e| {
                    crate::Error::Invalid(format!("job {id}'s stored result is not JSON: {e}"))
                })
        }
        _ => Ok(JobResult::Failed {
            error: error.unwrap_or_default(),
        }),
    }
}

/// What a worker registers.
#[derive(Debug, Clone)]
pub(crate) struct WorkerInfo<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub pid: i32,
    /// Empty: every queue.
    pub queues: &'a [String],
}

impl WorkerInfo<'_> {
    /// The `queues` column: comma-separated, `None` for every queue.
    pub(crate) fn queues_column(&self) -> Option<String> {
        (!self.queues.is_empty()).then(|| self.queues.join(","))
    }
}

/// dj's version, as workers register it.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The backend interface. Implemented by PostgreSQL and SQLite; not for applications.
pub(crate) trait Store: Send + Sync + 'static {
    /// `postgres://...` or `sqlite:...`, with any password hidden.
    fn describe(&self) -> String;
    /// Creates or upgrades the table and its indexes; returns the versions applied.
    fn migrate(&self) -> Result<Vec<u32>>;
    /// Fails with [`crate::Error::MissingTable`] unless the table has every column dj needs.
    fn check_schema(&self) -> Result<()>;
    /// Fails with [`crate::Error::ReadOnly`] when this process cannot write to the database.
    /// The default assumes it can (a PostgreSQL role without write grants fails on its
    /// first claim instead).
    fn check_writable(&self) -> Result<()> {
        Ok(())
    }
    /// The database's clock.
    fn now(&self) -> Result<SystemTime>;

    fn job_insert_many(&self, rows: &[NewJob]) -> Result<Vec<EnqueueOutcome>>;
    /// The PostgreSQL store, whose insert can be awaited.
    #[cfg(all(feature = "postgres", feature = "tokio"))]
    fn as_postgres(&self) -> Option<&postgres::PgStore> {
        None
    }
    /// Locks up to `limit` ready jobs for the worker, in priority then run_at order.
    fn job_claim(&self, params: &ClaimParams<'_>) -> Result<Vec<JobRow>>;
    /// The fast lane: like [`Store::job_claim`], but the rows are only locked, in a
    /// transaction left open while they run, and the batch is recorded (committed) before
    /// this returns. `None`: this backend has no lane, or this claim should be an ordinary
    /// one (listed queues, limited work to look for, no connection free without waiting, no
    /// row the lane may take, or no ordinary claim for a second).
    fn lane_claim(&self, _params: &ClaimParams<'_>) -> Result<Option<LaneClaim>> {
        Ok(None)
    }
    /// Ends a lane in its transaction: `promote` become ordinary claims of `worker` (jobs
    /// still running, failed ones whose outcome follows), the `finished` are deleted (with
    /// their results), with the batch's record; then commits. After an error nothing of it
    /// was written: the lane's rows are free again.
    fn lane_finish(
        &self,
        _lane: Lane,
        _worker: &str,
        _finished: Finished<'_>,
        _promote: &[JobId],
    ) -> Result<()> {
        unreachable!("a lane comes only from a backend that has lanes")
    }
    /// After a failed [`Store::lane_finish`]: deletes the lane's record (`worker`'s naming any
    /// of `ids`) and those of the rows its jobs had finished that no worker has claimed since
    /// (keeping their results). Retried until it succeeds, it keeps them from running again
    /// unless another worker took one first.
    fn lane_abandoned(&self, _worker: &str, _ids: &[JobId], _finished: Finished<'_>) -> Result<()> {
        unreachable!("a lane comes only from a backend that has lanes")
    }
    /// Lanes left by workers that died: `worker`'s (a name being registered again), or with
    /// `None` those of every unregistered name. Their rows still waiting count a crash.
    fn lane_rescue(&self, _worker: Option<&str>) -> Result<u64> {
        Ok(0)
    }
    /// Rebuilds the table's indexes without blocking writers (`REINDEX INDEX CONCURRENTLY` on
    /// PostgreSQL, after dropping any invalid index an interrupted rebuild left); returns
    /// the indexes rebuilt. SQLite: none (its `REINDEX` would block every writer).
    fn reindex(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// Deletes finished jobs still locked by `worker`.
    fn job_complete(&self, worker: &str, ids: &[JobId]) -> Result<()>;
    /// Deletes finished jobs still locked by `worker` and keeps the results they recorded
    /// (replacing an older one of the same job), in one transaction; wakes their waiters.
    fn job_complete_recorded(&self, worker: &str, recorded: &[Recorded]) -> Result<()>;
    /// The stored result of job `id` (`dj_results`), if any.
    fn result_get(&self, id: JobId) -> Result<Option<JobResult>>;
    /// Deletes up to `limit` results stored longer ago than `older_than`.
    fn result_prune(&self, older_than: Duration, limit: i64) -> Result<u64>;
    /// Writes the latest progress of running jobs (`dj_progress`), replacing older reports.
    fn progress_write(&self, reports: &[(JobId, f64, String)]) -> Result<()>;
    /// Deletes the progress of jobs that ended.
    fn progress_clear(&self, ids: &[JobId]) -> Result<()>;
    /// The progress of those of `ids` that reported some.
    fn progress_of(&self, ids: &[JobId]) -> Result<Vec<(JobId, crate::model::Progress)>>;
    /// Deletes the progress of jobs whose rows are gone (their worker died before clearing
    /// it); returns how many.
    fn progress_prune(&self) -> Result<u64>;
    /// Job `id`'s failed attempts (`dj_attempts`), oldest first.
    fn attempt_list(&self, id: JobId) -> Result<Vec<crate::model::Attempt>>;
    /// Up to `limit` attempts of jobs whose rows are gone, recorded more than `older_than`
    /// ago, deleted.
    fn attempt_prune(&self, older_than: Duration, limit: i64) -> Result<u64>;
    /// The ids of jobs whose outcome was just stored, as the database announces them; `None`
    /// where it cannot (SQLite, or no LISTEN here): a wait for a result polls.
    fn result_wakeups(&self) -> Option<tokio::sync::broadcast::Receiver<JobId>> {
        None
    }
    fn job_retry(&self, worker: &str, retries: &[Retry]) -> Result<()>;
    /// Records permanent failures; a destroyed row's error is kept in `dj_results`, and the
    /// jobs' waiters are woken.
    fn job_fail(&self, worker: &str, fails: &[Fail]) -> Result<()>;
    /// Those of `ids` that `worker` still holds (after jobs completed their rows in their own
    /// transactions: a row still held means its transaction did not commit).
    fn job_held(&self, worker: &str, ids: &[JobId]) -> Result<Vec<JobId>>;
    /// Releases locks without counting an attempt (interrupted at shutdown).
    fn job_unlock(&self, worker: &str, ids: &[JobId]) -> Result<u64>;
    /// Records that these jobs, locked by `worker`, have started; returns how many were.
    fn job_mark_started(&self, worker: &str, ids: &[JobId]) -> Result<u64>;
    /// Releases locks of a dead worker's jobs that had no recorded start, without counting an
    /// attempt, and counts the crash (`crashes + 1`).
    fn job_release_orphaned(&self, worker: &str, ids: &[JobId]) -> Result<u64>;
    /// Releases every lock held by one worker name; returns how many.
    fn job_unlock_worker(&self, worker: &str) -> Result<u64>;

    fn job_list(&self, filter: &JobFilter) -> Result<Vec<JobRow>>;
    fn job_count(&self, filter: &JobFilter) -> Result<i64>;
    fn job_delete(&self, filter: &JobFilter) -> Result<u64>;
    /// Makes matching failed (or scheduled) jobs ready now, with attempts reset.
    fn job_update(&self, filter: &JobFilter, change: filter::Change) -> Result<u64>;
    fn job_stats(&self) -> Result<Vec<QueueStats>>;
    /// Locked rows per worker name, by name ([`filter::lockers`]).
    fn job_count_by_locker(&self) -> Result<Vec<(Option<String>, i64)>>;

    /// Adds (or replaces) a worker's entry in `dj_workers`, heartbeat now.
    fn worker_register(&self, worker: &WorkerInfo<'_>) -> Result<()>;
    /// Refreshes a worker's heartbeat; false if it has no entry (it was declared dead).
    fn worker_heartbeat(&self, name: &str, running: i32) -> Result<bool>;
    /// Removes a worker's entry. With `stale_after`, only if its heartbeat is older than that
    /// (so a worker that has just answered is never declared dead). True if it was removed.
    fn worker_remove(&self, name: &str, stale_after: Option<Duration>) -> Result<bool>;
    /// Every registered worker, by name.
    fn worker_list(&self) -> Result<Vec<WorkerRow>>;
    /// Deletes up to `limit` rows that failed for good more than `older_than` ago, oldest
    /// first; returns how many.
    fn job_prune_failed(&self, older_than: Duration, limit: i64) -> Result<u64>;
    /// Pauses (`true`) or resumes a queue; returns whether that changed anything.
    fn queue_pause(&self, queue: &str, paused: bool) -> Result<bool>;
    /// The paused queues, by name.
    fn queue_paused(&self) -> Result<Vec<String>>;
    /// Cancels a job: a waiting one fails for good as "cancelled" at once; for a running one
    /// a request is stored for its worker.
    fn job_cancel(&self, id: JobId) -> Result<Cancel>;
    /// Inserts a workflow in one transaction: every step's row, the waiting ones held apart,
    /// and the links between them.
    fn workflow_insert(&self, workflow: &NewWorkflow) -> Result<WorkflowRun>;
    /// A workflow and its steps.
    fn workflow_get(&self, id: WorkflowId) -> Result<Option<WorkflowInfo>>;
    /// Cancels a running workflow's waiting steps and marks it cancelled; returns its ready
    /// steps, for the caller to cancel one by one.
    fn workflow_cancel(&self, id: WorkflowId) -> Result<(WorkflowCancel, Vec<JobId>)>;
    /// Retries a workflow's failed steps and puts back its cancelled ones, in one
    /// transaction: how many steps that concerned (`None`: no such workflow).
    fn workflow_retry(&self, id: WorkflowId) -> Result<Option<u64>>;
    /// The newest `limit` workflows, without their steps.
    fn workflow_list(&self, limit: i64) -> Result<Vec<WorkflowInfo>>;
    /// How many workflows are in each state (finished ones until pruned).
    fn workflow_counts(&self) -> Result<Vec<(WorkflowState, i64)>>;
    /// Deletes up to `limit` workflows finished more than `older_than` ago, with their steps.
    fn workflow_prune(&self, older_than: Duration, limit: i64) -> Result<u64>;
    /// Adds jobs to open batch `id` (a refusal, saying why, if it is no open batch).
    fn batch_add(&self, id: WorkflowId, rows: &[NewJob]) -> Result<Vec<JobId>>;
    /// The workflow that job `job` is a step of.
    fn workflow_of(&self, job: JobId) -> Result<Option<WorkflowId>>;
    /// The job id of step `step` of the workflow that job `job` is a step of.
    fn workflow_dependency(&self, job: JobId, step: &str) -> Result<Option<JobId>>;
    /// The state of the workflow step whose job is `job`, if it is one.
    fn workflow_step_state(&self, job: JobId) -> Result<Option<StepState>>;
    /// Which of these running jobs have a cancel request.
    fn job_cancel_requested(&self, ids: &[JobId]) -> Result<Vec<JobId>>;
    /// Deletes cancel requests whose job is no longer running; returns how many.
    fn cancel_prune(&self) -> Result<u64>;
    /// Sets (`Some`) or removes a queue's limit on running jobs; returns whether it changed.
    fn queue_limit(&self, queue: &str, max_running: Option<i32>) -> Result<bool>;
    /// Every queue limit, by queue.
    fn queue_limits(&self) -> Result<Vec<(String, i32)>>;
    /// Sets (`Some`) or removes a rate limit of a queue or key; returns whether it changed.
    fn rate_limit(&self, scope: &RateScope, rate: Option<StoredRate>) -> Result<bool>;
    /// Every rate limit set at run time, queues first, then by name.
    fn rate_limits(&self) -> Result<Vec<RateLimit>>;
    /// Priority aging: up to `batch` jobs ready for longer than `waited` whose priority is
    /// worse than the best ready one get one step better (priority - 1), the worst priority
    /// first and within it the longest waiting; returns how many.
    fn job_age(&self, waited: Duration, batch: i64) -> Result<u64>;
    /// Deletes the rate limits' starts that no longer count; returns how many.
    fn rate_prune(&self) -> Result<u64>;
    /// How long until a rate's next start frees up, as the last limited claim that came back
    /// short read it; told once.
    fn rate_refill(&self) -> Option<Duration>;
    /// Wins a maintenance pass of `task` for `worker` if no pass ran in the last `every`.
    fn maintenance_claim(&self, task: &str, worker: &str, every: Duration) -> Result<bool>;

    /// Adds jobs finished to the current minute's throughput, and deletes minutes older
    /// than a day.
    fn throughput_add(&self, succeeded: i64, failed: i64) -> Result<()>;
    /// The throughput of the last `minutes` minutes: (minute, succeeded, failed), oldest
    /// first; minutes without jobs are absent.
    fn throughput(&self, minutes: u32) -> Result<Vec<(SystemTime, i64, i64)>>;

    /// Adds a schedule, or updates its definition (its next fire time only if the
    /// expression or zone changed); nothing is written when nothing changed.
    fn cron_upsert(&self, schedule: &ScheduleDef, next: Option<SystemTime>) -> Result<()>;
    /// Removes a schedule; false if there was none.
    fn cron_remove(&self, name: &str) -> Result<bool>;
    /// Every schedule, by name.
    fn cron_list(&self) -> Result<Vec<ScheduleRow>>;
    /// The database's clock, and the schedules whose next fire time has come by it.
    fn cron_due(&self) -> Result<(SystemTime, Vec<ScheduleRow>)>;
    /// Fires a schedule: if its next fire time is still `expected`, sets it to `next` (and
    /// `last_fire_at` to `last`) and inserts `jobs`, in one transaction. False if another
    /// worker fired it first (nothing is written).
    fn cron_fire(&self, fire: &CronFire<'_>) -> Result<bool>;

    /// Blocks until new jobs may be ready or `timeout` passes. Returns true if woken early.
    /// The default just sleeps: polling.
    fn wait_for_jobs(&self, timeout: Duration, stop: &StopFlag) -> bool {
        stop.sleep(timeout);
        false
    }

    /// How [`Store::wait_for_jobs`] hears of new jobs, where the configuration chose it (a
    /// worker logs it at start); `None` for the backend's usual way.
    fn wakeups(&self) -> Option<Wakeups> {
        None
    }
}

/// How a worker hears of new jobs, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // only PostgreSQL chooses
pub(crate) enum Wakeups {
    /// LISTEN on a connection of its own to this server (shown, password hidden).
    Listen(String),
    /// Polling every `sleep_delay`, for this reason.
    Poll(&'static str),
}

/// Whether a claim should look for limited jobs (a queue limit, or a ready row with a
/// concurrency key). The look is one query; when it finds none, the next claims skip it for
/// `LIMITED_RECHECK`, so that a cluster without limits pays for it once a second, not once per
/// claim. A limited job enqueued meanwhile waits at most that long; unlimited claims never take
/// limited rows whatever this says, so limits hold regardless.
#[derive(Debug, Default)]
pub(crate) struct LimitedProbe {
    none_since: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long a probe that found no limited work is trusted.
const LIMITED_RECHECK: Duration = Duration::from_secs(1);

impl LimitedProbe {
    /// True if the claim should run the look (and then report what it found).
    pub(crate) fn due(&self) -> bool {
        let none_since = self.none_since.lock().unwrap_or_else(|e| e.into_inner());
        none_since.is_none_or(|at| at.elapsed() >= LIMITED_RECHECK)
    }
    /// What the look found.
    pub(crate) fn found(&self, any: bool) {
        let mut none_since = self.none_since.lock().unwrap_or_else(|e| e.into_inner());
        *none_since = (!any).then(std::time::Instant::now);
    }
    /// Runs `look` if it is due (a blocking backend's one query), and keeps what it found;
    /// false when not due.
    #[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
    pub(crate) fn look(&self, look: impl FnOnce() -> Result<bool>) -> Result<bool> {
        if !self.due() {
            return Ok(false);
        }
        let any = look()?;
        self.found(any);
        Ok(any)
    }
}

/// A rate limit as `dj_rate_limits` stores it: kind, name, starts, period in ms.
#[cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(dead_code)
)]
pub(crate) fn rate_limit_of(kind: String, name: String, starts: i32, period_ms: i32) -> RateLimit {
    let scope = match kind.as_str() {
        "queue" => RateScope::Queue(name),
        _ => RateScope::Key(name),
    };
    RateLimit {
        scope,
        rate: Rate::from_stored(starts, period_ms),
    }
}

/// Where the limited claim's walk of keys starts: after the key it served last, the walk
/// going on from the first key once past the last (keys compared in byte order, as the claims
/// walk them). Each claim walks a bounded number of keys, so over successive claims the walk
/// goes round all of them: keys beyond one claim's reach are not starved by those before.
/// Empty (the walk starts at the first key) after a claim that took no keyed job.
#[derive(Debug, Default)]
pub(crate) struct KeyCursor {
    after: std::sync::Mutex<Option<String>>,
}

impl KeyCursor {
    /// The key the next walk starts after.
    pub(crate) fn cursor(&self) -> Option<String> {
        self.after.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// What a limited claim took: the last of its keys in the walk's order (those after the
    /// cursor, then those up to it).
    pub(crate) fn claimed(&self, jobs: &[JobRow]) {
        let mut after = self.after.lock().unwrap_or_else(|e| e.into_inner());
        let walked = |key: &str| (after.as_deref().is_some_and(|c| key <= c), key.to_owned());
        let last = jobs
            .iter()
            .filter_map(|j| j.concurrency_key.as_deref())
            .map(walked)
            .max()
            .map(|(_, key)| key);
        *after = last;
    }
}

/// When a rate limit's next start frees up, as the last limited claim that came back short
/// read it: a worker with nothing to do waits until then rather than its whole
/// `sleep_delay` (no NOTIFY says that a rate's window moved on).
#[derive(Debug, Default)]
pub(crate) struct RateRefill {
    at: std::sync::Mutex<Option<std::time::Instant>>,
}

impl RateRefill {
    /// What a limited claim read: seconds from now, or none.
    pub(crate) fn set(&self, secs: Option<f64>) {
        let at = secs
            .and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok())
            .map(|d| std::time::Instant::now() + d);
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
    /// How long until then (zero if it has passed), once: the next short limited claim
    /// reads it again, and a value no claim renewed is not waited on twice.
    pub(crate) fn take(&self) -> Option<Duration> {
        let at = self.at.lock().unwrap_or_else(|e| e.into_inner()).take();
        at.map(|at| at.saturating_duration_since(std::time::Instant::now()))
    }
}

/// Claimed rows in the order they should start: priority, then run_at (then id). `RETURNING`
/// gives no order of its own.
pub(crate) fn claim_order(jobs: &mut [JobRow]) {
    jobs.sort_by_key(|j| (j.priority, j.run_at, j.id));
}

/// Every migration's SQL in order: what `schema` prints.
#[cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(dead_code)
)]
pub(crate) fn schema_of(migrations: &[(u32, &str)]) -> String {
    migrations
        .iter()
        .map(|(_, sql)| *sql)
        .collect::<Vec<_>>()
        .join("\n")
}
