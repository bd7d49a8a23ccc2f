//! The job types the tests enqueue. Each records what happens to it in a perform log, so a
//! test can count performs (not rows), even across worker processes.

use std::time::{Duration, SystemTime};

use dj::{Context, Job, JobError, Perform};
use serde::{Deserialize, Serialize};

use crate::support::record;

/// Application state the worker binary provides.
#[derive(Debug)]
pub struct Greeting(pub String);

/// Records `perform KEY`.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Record {
    pub log: String,
    pub key: String,
}

impl Perform for Record {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        record(&self.log, &format!("perform {}", self.key));
        Ok(())
    }
}

/// An error with a cause, to check that `last_error` keeps the chain.
#[derive(Debug, thiserror::Error)]
#[error("could not fetch {key}")]
pub struct FetchError {
    pub key: String,
    #[source]
    pub source: std::io::Error,
}

/// Fails every time, with a cause chain.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct AlwaysFails {
    pub log: String,
    pub key: String,
}

impl Perform for AlwaysFails {
    type Error = FetchError;
    fn perform(&self, _ctx: &Context) -> Result<(), FetchError> {
        record(&self.log, &format!("perform {}", self.key));
        Err(FetchError {
            key: self.key.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ),
        })
    }
}

/// Fails every time and asks to be retried at once, so attempts run out quickly; records
/// its `failure` hook.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(max_attempts = 3)]
pub struct FailsFast {
    pub log: String,
    pub keep: bool,
    pub failure_panics: bool,
}

impl Perform for FailsFast {
    type Error = dj::Message;
    fn perform(&self, _ctx: &Context) -> Result<(), dj::Message> {
        record(&self.log, "perform");
        Err(dj::Message("still broken".to_owned()))
    }
    fn reschedule_at(&self, now: SystemTime, _attempts: u32) -> SystemTime {
        now
    }
    fn failure(&self, _ctx: &Context, error: &JobError) {
        record(&self.log, &format!("failure: {error}"));
        if self.failure_panics {
            panic!("the failure hook itself broke");
        }
    }
    fn destroy_failed_jobs(&self) -> Option<bool> {
        Some(!self.keep)
    }
}

/// Panics in `perform`.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Panics {
    pub log: String,
}

impl Perform for Panics {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        record(&self.log, "perform");
        panic!("boom");
    }
}

/// Sleeps, recording `start KEY` before and `done KEY` after.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Sleeps {
    pub log: String,
    pub key: String,
    pub millis: u64,
    pub max_run_time_secs: Option<u64>,
}

impl Perform for Sleeps {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        record(&self.log, &format!("start {}", self.key));
        std::thread::sleep(Duration::from_millis(self.millis));
        record(&self.log, &format!("done {}", self.key));
        Ok(())
    }
    fn max_run_time(&self) -> Option<Duration> {
        self.max_run_time_secs.map(Duration::from_secs)
    }
}

/// Records every hook, in order; fails when `fail` is set.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(max_attempts = 1)]
pub struct Hooked {
    pub log: String,
    pub fail: bool,
}

impl Perform for Hooked {
    type Error = dj::Message;
    fn perform(&self, _ctx: &Context) -> Result<(), dj::Message> {
        record(&self.log, "perform");
        if self.fail {
            return Err(dj::Message("hooked failure".to_owned()));
        }
        Ok(())
    }
    fn before(&self, _ctx: &Context) {
        record(&self.log, "before");
    }
    fn after(&self, _ctx: &Context) {
        record(&self.log, "after");
    }
    fn success(&self, _ctx: &Context) {
        record(&self.log, "success");
    }
    fn error(&self, _ctx: &Context, _error: &JobError) {
        record(&self.log, "error");
    }
    fn failure(&self, _ctx: &Context, _error: &JobError) {
        record(&self.log, "failure");
    }
}

/// Asks not to be retried.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct GivesUp {
    pub log: String,
}

impl Perform for GivesUp {
    type Error = JobError;
    fn perform(&self, _ctx: &Context) -> Result<(), JobError> {
        record(&self.log, "perform");
        Err(JobError::permanent(dj::Message(
            "the account is gone".to_owned(),
        )))
    }
}

/// Kills its own worker process (a poison pill).
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(max_attempts = 2)]
pub struct KillsWorker {
    pub log: String,
}

impl Perform for KillsWorker {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        record(&self.log, "perform");
        std::process::abort();
    }
}

/// Reads the worker's state through the context.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct ReadsState {
    pub log: String,
}

impl Perform for ReadsState {
    type Error = std::io::Error;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        let greeting = ctx.get::<Greeting>().map_or("no state", |g| g.0.as_str());
        record(&self.log, &format!("state: {greeting}"));
        record(&self.log, &format!("attempts: {}", ctx.job().attempts));
        Ok(())
    }
}

/// Records the queue and priority its context reports: `info QUEUE PRIORITY`.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(queue = "type-queue", priority = 4)]
pub struct RecordsInfo {
    pub log: String,
}

impl Perform for RecordsInfo {
    type Error = std::io::Error;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        let job = ctx.job();
        let queue = job.queue.as_deref().unwrap_or("none");
        record(&self.log, &format!("info {queue} {}", job.priority));
        Ok(())
    }
}

/// A plain function as a job.
#[dj::job(queue = "math")]
pub fn add(log: String, a: i64, b: i64) -> Result<(), std::io::Error> {
    record(&log, &format!("sum {}", a + b));
    Ok(())
}

/// Stored under an explicit name, with an alias for rows written before a rename.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(name = "renamed.v2", aliases = ["OldName"])]
pub struct Renamed {
    pub log: String,
}

impl Perform for Renamed {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        record(&self.log, "renamed");
        Ok(())
    }
}

/// The job name of `J`, for assertions.
pub fn name_of<J: Job>() -> &'static str {
    J::NAME
}

/// Records `start KEY attempts N`, sleeps `millis`, records `done KEY`: for the chaos cases,
/// which count performs and check that no innocent job was charged an attempt.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Bystander {
    pub log: String,
    pub key: String,
    pub millis: u64,
}

impl Perform for Bystander {
    type Error = std::io::Error;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        record(
            &self.log,
            &format!("start {} attempts {}", self.key, ctx.job().attempts),
        );
        std::thread::sleep(Duration::from_millis(self.millis));
        record(&self.log, &format!("done {}", self.key));
        Ok(())
    }
}

/// Kills its own worker process after a short pause (so that outcomes the worker already
/// has reach the database first): a poison pill among bystanders.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(max_attempts = 3)]
pub struct PoisonPill {
    pub log: String,
}

impl Perform for PoisonPill {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        record(&self.log, "pill");
        std::thread::sleep(Duration::from_millis(300));
        std::process::abort();
    }
}

/// An async job: records `async KEY attempts N`, then fails the first `fail_first` attempts.
#[dj::job(max_attempts = 3)]
pub async fn async_record(
    ctx: &Context,
    log: String,
    key: String,
    fail_first: u32,
) -> Result<(), dj::Message> {
    tokio::task::yield_now().await;
    let attempts = ctx.job().attempts;
    record(&log, &format!("async {key} attempts {attempts}"));
    if attempts < fail_first {
        return Err(dj::Message(format!("async failure {attempts}")));
    }
    Ok(())
}

/// An async job that outlives its max_run_time (1 s) unless dropped.
#[dj::job(max_run_time = 1)]
pub async fn async_sleeps(log: String) {
    record(&log, "async sleep start");
    tokio::time::sleep(Duration::from_secs(30)).await;
    record(&log, "async sleep done");
}

/// An async job that panics after an await.
#[dj::job]
pub async fn async_panics(log: String) {
    tokio::task::yield_now().await;
    record(&log, "async panic");
    panic!("async boom");
}

/// Snoozes (no attempt counted) until it has snoozed `times` times, then records
/// `done snoozes N attempts A`.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Snoozes {
    pub log: String,
    pub times: u32,
}

impl Perform for Snoozes {
    type Error = dj::JobError;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        let job = ctx.job();
        if job.snoozes < self.times {
            return Err(dj::JobError::snooze(Duration::ZERO));
        }
        record(
            &self.log,
            &format!("done snoozes {} attempts {}", job.snoozes, job.attempts),
        );
        Ok(())
    }
}

/// Works for up to 30 s in 20 ms steps, stopping early when cancelled: records `start`,
/// then `cancelled` and fails, or `done`.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Cancellable {
    pub log: String,
}

impl Perform for Cancellable {
    type Error = dj::Message;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        record(&self.log, "start");
        for _ in 0..1500 {
            if ctx.is_cancelled() {
                record(&self.log, "cancelled");
                return Err(dj::Message("stopped on request".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        record(&self.log, "done");
        Ok(())
    }
}

/// An async job that waits 30 s unless its future is dropped.
#[dj::job]
pub async fn async_waits(log: String) {
    record(&log, "async start");
    tokio::time::sleep(Duration::from_secs(30)).await;
    record(&log, "async done");
}

/// Counts, from the table, the running jobs of its queue while it runs, and records
/// `running N`: a database-side count, so a broken limit shows whatever the timing.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct CountsRunning {
    pub log: String,
    pub queue: String,
}

impl Perform for CountsRunning {
    type Error = dj::Error;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        std::thread::sleep(Duration::from_millis(40));
        let db = ctx.db().expect("a worker's job has the db");
        let running = db.count_jobs(&dj::JobFilter {
            state: Some(dj::JobState::Running),
            queue: Some(self.queue.clone()),
            ..dj::JobFilter::default()
        })?;
        record(&self.log, &format!("running {running}"));
        std::thread::sleep(Duration::from_millis(40));
        Ok(())
    }
}

/// A unique job keyed by its customer (`#[job(unique = "customer")]`): records
/// `sync CUSTOMER VERSION`.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(unique = "customer")]
pub struct SyncCustomer {
    pub log: String,
    pub customer: i64,
    pub version: u32,
}

impl Perform for SyncCustomer {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        record(
            &self.log,
            &format!("sync {} {}", self.customer, self.version),
        );
        Ok(())
    }
}

/// While it runs, enqueues a job with its own unique key and records what that enqueue
/// was: `inner inserted` (the key was freed when this job started) or `inner duplicate`.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct UniqueProbe {
    pub log: String,
    pub until_done: bool,
    pub outer: bool,
}

impl UniqueProbe {
    pub fn delayed(self) -> dj::Delayed<Self> {
        let until_done = self.until_done;
        let delayed = self.delay().unique("probe");
        if until_done {
            delayed.unique_until_done()
        } else {
            delayed
        }
    }
}

impl Perform for UniqueProbe {
    type Error = dj::Error;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        if !self.outer {
            return Ok(());
        }
        let db = ctx.db().expect("a worker's job has the db");
        let inner = UniqueProbe {
            outer: false,
            ..self.clone()
        };
        let outcome = inner.delayed().enqueue_outcome(db)?;
        let what = if outcome.is_duplicate() {
            "duplicate"
        } else {
            "inserted"
        };
        record(&self.log, &format!("inner {what}"));
        Ok(())
    }
}

/// At most one at a time per customer (`#[job(concurrency_key = "customer", concurrency =
/// 1)]`). While it runs it counts, from the table, the running rows with its own key and
/// records `key CUSTOMER running N`: a database-side count, whatever the timing.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(concurrency_key = "customer", concurrency = 1)]
pub struct CountsKey {
    pub log: String,
    pub customer: i64,
}

impl Perform for CountsKey {
    type Error = dj::Error;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        std::thread::sleep(Duration::from_millis(30));
        let db = ctx.db().expect("a worker's job has the db");
        let running = db.jobs(&dj::JobFilter {
            state: Some(dj::JobState::Running),
            name: Some(Self::NAME.into()),
            ..dj::JobFilter::default()
        })?;
        let mine = running
            .iter()
            .find(|row| row.id == ctx.job().id)
            .and_then(|row| row.concurrency_key.clone())
            .expect("this job is running, with its key");
        let same = running
            .iter()
            .filter(|row| row.concurrency_key.as_deref() == Some(mine.as_str()))
            .count();
        record(&self.log, &format!("key {} running {same}", self.customer));
        std::thread::sleep(Duration::from_millis(30));
        Ok(())
    }
}

/// Records `tick ID FIRE` (its row's id and run time in unix seconds, which for a job
/// enqueued by a schedule is its fire time).
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Tick {
    pub log: String,
}

impl Perform for Tick {
    type Error = dj::Error;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        let db = ctx.db().expect("a worker's job has the db");
        let id = ctx.job().id;
        let row = db.job(id)?.expect("the running job's row");
        let fire = row
            .run_at
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        record(&self.log, &format!("tick {id} {fire}"));
        Ok(())
    }
}

/// A schedule from code that never fires during a test run (29 February, in Paris): every
/// worker of the tests registers it, and `worker cron` lists it.
#[derive(Debug, Clone, Default, Job, Serialize, Deserialize)]
#[job(
    cron = "0 0 0 29 2 *",
    tz = "Europe/Paris",
    missed = "skip",
    queue = "leap"
)]
pub struct LeapDay;

impl Perform for LeapDay {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Records `start KEY`, waits until the file `gate` exists (a minute at most), then records
/// `perform KEY`: a job that holds its worker's slot until the test lets it finish.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Gated {
    pub log: String,
    pub key: String,
    pub gate: String,
}

impl Perform for Gated {
    type Error = std::io::Error;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        record(&self.log, &format!("start {}", self.key));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !std::path::Path::new(&self.gate).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        record(&self.log, &format!("perform {}", self.key));
        Ok(())
    }
}

/// What [`Squares`] records as its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Square {
    pub n: i64,
    pub square: i64,
}

/// Records `perform N` and, as its result, `N` and `N²`; a negative `N` fails for good
/// ("no square for N") without recording one.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Squares {
    pub log: String,
    pub n: i64,
}

impl Perform for Squares {
    type Error = JobError;
    fn perform(&self, ctx: &Context) -> Result<(), JobError> {
        record(&self.log, &format!("perform {}", self.n));
        if self.n < 0 {
            return Err(JobError::permanent(format!("no square for {}", self.n)));
        }
        ctx.set_result(&Square {
            n: self.n,
            square: self.n * self.n,
        })?;
        Ok(())
    }
}

/// The async form of [`Squares`]: records `perform N` and returns `[N, N³]` after a
/// millisecond's sleep.
#[dj::job]
pub async fn cubes(ctx: &Context, log: String, n: i64) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    record(&log, &format!("perform {n}"));
    ctx.set_result(&[n, n * n * n])?;
    Ok(())
}

/// Tries to record a result over dj's limit; fails for good with `set_result`'s error.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct HugeResult;

impl Perform for HugeResult {
    type Error = JobError;
    fn perform(&self, ctx: &Context) -> Result<(), JobError> {
        let text = "x".repeat(dj::MAX_RESULT_BYTES);
        ctx.set_result(&text).map_err(JobError::permanent)?;
        Ok(())
    }
}

/// A step of a sequence: records `start KEY SEQ`, sleeps `millis`, records `end KEY SEQ`.
/// `fail`: 0 succeeds; 1 fails its first attempt (retried in 200 ms); 2 fails for good.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Step {
    pub log: String,
    pub key: String,
    pub seq: u32,
    pub millis: u64,
    pub fail: u8,
}

impl Perform for Step {
    type Error = JobError;
    fn perform(&self, ctx: &Context) -> Result<(), JobError> {
        record(&self.log, &format!("start {} {}", self.key, self.seq));
        std::thread::sleep(Duration::from_millis(self.millis));
        record(&self.log, &format!("end {} {}", self.key, self.seq));
        match self.fail {
            1 if ctx.job().attempts == 0 => Err(JobError::retry_in(
                format!("step {} {} fails once", self.key, self.seq),
                Duration::from_millis(200),
            )),
            2 => Err(JobError::permanent(format!(
                "step {} {} fails for good",
                self.key, self.seq
            ))),
            _ => Ok(()),
        }
    }
}

/// A sequence from the type's attribute: one per account.
#[dj::job(sequence = "account")]
pub fn post_entry(log: String, account: u32, cents: i64) {
    record(&log, &format!("post {account} {cents}"));
}

/// How a [`Deposit`]'s first perform ends its transaction (later performs commit).
pub mod ending {
    /// Commits, and `perform` returns `Ok`.
    pub const COMMIT: u8 = 0;
    /// Completes its row but never commits (the transaction rolls back), and `perform`
    /// returns `Ok` anyway.
    pub const ROLL_BACK: u8 = 1;
    /// Commits, then `perform` returns an error.
    pub const ERR_AFTER_COMMIT: u8 = 2;
}

/// The table [`Deposit`] and `async_deposit` write their effects to, for a test to create.
pub const CREATE_EFFECTS: &str = "CREATE TABLE effects (effect text NOT NULL)";

/// A job with an exactly-once effect: records `perform KEY` (outside any transaction), then,
/// in one transaction on the job's database through `driver` (`postgres`, `rusqlite`,
/// `mysql` or `diesel`), inserts `KEY` into `effects`, completes its row with `complete_in` (its result:
/// `KEY`), sleeps `millis` with the transaction still open, and commits. Its first perform
/// first sleeps `hold_ms` (before the transaction) and ends as `ending` says. A refused
/// completion records `refused KEY: ERROR`.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(transactional = true)]
pub struct Deposit {
    pub log: String,
    pub url: String,
    pub key: String,
    pub driver: String,
    pub millis: u64,
    pub hold_ms: u64,
    pub ending: u8,
}

impl Perform for Deposit {
    type Error = JobError;
    fn perform(&self, ctx: &Context) -> Result<(), JobError> {
        let performed = format!("perform {}", self.key);
        record(&self.log, &performed);
        let first = crate::support::PerformLog::new(self.log.clone().into()).count(&performed) == 1;
        let ending = if first { self.ending } else { ending::COMMIT };
        if first {
            std::thread::sleep(Duration::from_millis(self.hold_ms));
        }
        ctx.set_result(&self.key)?;
        let sent = match self.driver.as_str() {
            "postgres" => self.with_postgres(ctx, ending),
            "rusqlite" => self.with_rusqlite(ctx, ending),
            "diesel" => self.with_diesel(ctx, ending),
            "mysql" => self.with_mysql(ctx, ending),
            other => return Err(JobError::permanent(format!("no driver {other}"))),
        };
        if let Err(e) = sent {
            record(&self.log, &format!("refused {}: {e}", self.key));
            return Err(JobError::new(e));
        }
        match ending {
            ending::ERR_AFTER_COMMIT => Err(JobError::new("an error after the commit")),
            _ => Ok(()),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Deposit {
    fn hold(&self) {
        std::thread::sleep(Duration::from_millis(self.millis));
    }

    fn with_postgres(&self, ctx: &Context, ending: u8) -> Result<(), BoxError> {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)?;
        let mut tx = client.transaction()?;
        tx.execute("INSERT INTO effects (effect) VALUES ($1)", &[&self.key])?;
        ctx.complete_in(&mut tx)?;
        self.hold();
        if ending != ending::ROLL_BACK {
            tx.commit()?;
        }
        Ok(())
    }

    fn with_rusqlite(&self, ctx: &Context, ending: u8) -> Result<(), BoxError> {
        let mut conn = rusqlite::Connection::open(sqlite_path(&self.url))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("INSERT INTO effects (effect) VALUES (?1)", [&self.key])?;
        ctx.complete_in(&tx)?;
        self.hold();
        if ending != ending::ROLL_BACK {
            tx.commit()?;
        }
        Ok(())
    }

    fn with_mysql(&self, ctx: &Context, ending: u8) -> Result<(), BoxError> {
        use mysql::prelude::Queryable;
        let mut conn = mysql::Conn::new(mysql::Opts::from_url(&self.url)?)?;
        let mut tx = conn.start_transaction(mysql::TxOpts::default())?;
        tx.exec_drop("INSERT INTO effects (effect) VALUES (?)", (&self.key,))?;
        ctx.complete_in(&mut tx)?;
        self.hold();
        if ending != ending::ROLL_BACK {
            tx.commit()?;
        }
        Ok(())
    }

    fn with_diesel(&self, ctx: &Context, ending: u8) -> Result<(), BoxError> {
        use diesel::sql_types::Text;
        use diesel::{Connection as _, RunQueryDsl as _};
        const ROLLED_BACK: &str = "rolled back on purpose";
        let sent = match self.url.strip_prefix("sqlite:") {
            Some(path) => {
                let mut conn = diesel::SqliteConnection::establish(path)?;
                diesel::sql_query("PRAGMA busy_timeout = 10000").execute(&mut conn)?;
                conn.immediate_transaction(|conn| -> Result<(), BoxError> {
                    diesel::sql_query("INSERT INTO effects (effect) VALUES (?)")
                        .bind::<Text, _>(&self.key)
                        .execute(conn)?;
                    ctx.complete_in(&mut *conn)?;
                    self.hold();
                    match ending {
                        ending::ROLL_BACK => Err(ROLLED_BACK.into()),
                        _ => Ok(()),
                    }
                })
            }
            None if self.url.starts_with("mysql:") => {
                let mut conn = diesel::MysqlConnection::establish(&self.url)?;
                conn.transaction(|conn| -> Result<(), BoxError> {
                    diesel::sql_query("INSERT INTO effects (effect) VALUES (?)")
                        .bind::<Text, _>(&self.key)
                        .execute(conn)?;
                    ctx.complete_in(&mut *conn)?;
                    self.hold();
                    match ending {
                        ending::ROLL_BACK => Err(ROLLED_BACK.into()),
                        _ => Ok(()),
                    }
                })
            }
            None => {
                let mut conn = diesel::PgConnection::establish(&self.url)?;
                conn.transaction(|conn| -> Result<(), BoxError> {
                    diesel::sql_query("INSERT INTO effects (effect) VALUES ($1)")
                        .bind::<Text, _>(&self.key)
                        .execute(conn)?;
                    ctx.complete_in(&mut *conn)?;
                    self.hold();
                    match ending {
                        ending::ROLL_BACK => Err(ROLLED_BACK.into()),
                        _ => Ok(()),
                    }
                })
            }
        };
        match sent {
            Err(e) if e.to_string() == ROLLED_BACK => Ok(()),
            other => other,
        }
    }
}

/// The file of a `sqlite:` URL.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite:").unwrap_or(url)
}

/// The async form of [`Deposit`] (commits always), through `tokio-postgres` or sqlx (on
/// PostgreSQL, MySQL or SQLite, as the URL says).
#[dj::job(transactional = true)]
pub async fn async_deposit(
    ctx: &Context,
    log: String,
    url: String,
    key: String,
    driver: String,
) -> Result<(), JobError> {
    record(&log, &format!("perform {key}"));
    ctx.set_result(&key)?;
    let insert = "INSERT INTO effects (effect) VALUES ($1)";
    match (driver.as_str(), url.strip_prefix("sqlite:")) {
        ("tokio-postgres", None) => {
            let (mut client, connection) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            let connection = tokio::spawn(connection);
            let tx = client.transaction().await?;
            tx.execute(insert, &[&key]).await?;
            ctx.complete_in_async(&tx).await?;
            tx.commit().await?;
            drop(client);
            let _ = connection.await;
        }
        ("sqlx", None) if url.starts_with("mysql:") => {
            use sqlx::Connection as _;
            let mut conn = sqlx::MySqlConnection::connect(&url).await?;
            let mut tx = conn.begin().await?;
            sqlx::query("INSERT INTO effects (effect) VALUES (?)")
                .bind(&key)
                .execute(&mut *tx)
                .await?;
            ctx.complete_in_async(&mut tx).await?;
            tx.commit().await?;
        }
        ("sqlx", None) => {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            let mut tx = conn.begin().await?;
            sqlx::query(insert).bind(&key).execute(&mut *tx).await?;
            ctx.complete_in_async(&mut tx).await?;
            tx.commit().await?;
        }
        ("sqlx", Some(_)) => {
            use sqlx::Connection as _;
            let mut conn = sqlx::SqliteConnection::connect(&url).await?;
            let mut tx = conn.begin().await?;
            sqlx::query(insert).bind(&key).execute(&mut *tx).await?;
            ctx.complete_in_async(&mut tx).await?;
            tx.commit().await?;
        }
        (driver, _) => return Err(JobError::permanent(format!("no driver {driver} for {url}"))),
    }
    Ok(())
}

/// Calls `complete_in` though its type is not marked transactional: fails for good with the
/// error, which says what to add.
#[dj::job]
pub fn completes_untagged(ctx: &Context, url: String) -> Result<(), JobError> {
    match url.strip_prefix("sqlite:") {
        Some(path) => {
            let mut conn = rusqlite::Connection::open(path)?;
            let tx = conn.transaction()?;
            ctx.complete_in(&tx).map_err(JobError::permanent)?;
            tx.commit()?;
        }
        None if url.starts_with("mysql:") => {
            let mut conn = mysql::Conn::new(mysql::Opts::from_url(&url)?)?;
            let mut tx = conn.start_transaction(mysql::TxOpts::default())?;
            ctx.complete_in(&mut tx).map_err(JobError::permanent)?;
            tx.commit()?;
        }
        None => {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
            let mut tx = client.transaction()?;
            ctx.complete_in(&mut tx).map_err(JobError::permanent)?;
            tx.commit()?;
        }
    }
    Ok(())
}

/// Fails its first `fails` attempts, each after `millis` of work, with `KEY attempt N failed`
/// (padded with `pad` bytes of `x`), retried 50 ms later; with `for_good`, its last failure
/// is permanent. Records `perform KEY N` at each attempt.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(max_attempts = 40)]
pub struct Flaky {
    pub log: String,
    pub key: String,
    pub fails: u32,
    pub millis: u64,
    pub pad: usize,
    pub for_good: bool,
}

impl Perform for Flaky {
    type Error = JobError;
    fn perform(&self, ctx: &Context) -> Result<(), JobError> {
        let n = ctx.job().attempts + 1;
        record(&self.log, &format!("perform {} {n}", self.key));
        if n > self.fails {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(self.millis));
        let error = format!("{} attempt {n} failed{}", self.key, "x".repeat(self.pad));
        if self.for_good && n == self.fails {
            return Err(JobError::permanent(error));
        }
        Err(JobError::retry_in(error, Duration::from_millis(50)))
    }
}

/// Reports progress: `steps` steps of `millis` each, reporting `step N of STEPS` (fraction
/// N / STEPS) `burst` times after each; records `done KEY` at the end.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Reports {
    pub log: String,
    pub key: String,
    pub steps: u32,
    pub millis: u64,
    pub burst: u32,
}

impl Perform for Reports {
    type Error = std::convert::Infallible;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        for step in 1..=self.steps {
            std::thread::sleep(Duration::from_millis(self.millis));
            let message = format!("step {step} of {}", self.steps);
            for _ in 0..self.burst {
                ctx.progress(f64::from(step) / f64::from(self.steps), &message);
            }
        }
        record(&self.log, &format!("done {}", self.key));
        Ok(())
    }
}

/// A rate-limited call (20 starts a second per `partner`): records `call PARTNER KEY
/// CLAIMED STARTED` (see `stamp`).
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(concurrency_key = "partner", rate = "20/s")]
pub struct CallPartner {
    pub log: String,
    pub partner: String,
    pub key: String,
}

impl Perform for CallPartner {
    type Error = std::convert::Infallible;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        stamp(
            &self.log,
            ctx,
            &format!("call {} {}", self.partner, self.key),
        );
        Ok(())
    }
}

/// A job with no limit of its own: records `stamp KEY CLAIMED STARTED` (see `stamp`).
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Stamp {
    pub log: String,
    pub key: String,
}

impl Perform for Stamp {
    type Error = std::convert::Infallible;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        stamp(&self.log, ctx, &format!("stamp {}", self.key));
        Ok(())
    }
}

/// A tenant's job, claimed round-robin with other tenants': records `tenant TENANT KEY
/// CLAIMED STARTED` (see `stamp`).
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(fairness_key = "tenant")]
pub struct TenantJob {
    pub log: String,
    pub tenant: String,
    pub key: String,
}

impl Perform for TenantJob {
    type Error = std::convert::Infallible;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        stamp(
            &self.log,
            ctx,
            &format!("tenant {} {}", self.tenant, self.key),
        );
        Ok(())
    }
}

/// Records `WHAT CLAIMED STARTED`: the job's claim time (the database's, the instant a rate
/// counts as its start) and the time `perform` began, as unix microseconds.
fn stamp(log: &str, ctx: &Context, what: &str) {
    let micros = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros())
    };
    let claimed = ctx.job().claimed_at.map_or(0, micros);
    let started = micros(std::time::SystemTime::now());
    record(log, &format!("{what} {claimed} {started}"));
}

/// Keys for the encrypted-arguments tests (32 bytes each, in base64).
pub mod keys {
    pub const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    pub const K2: &str = "k2:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";
    pub const K3: &str = "k3:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
}

/// A job whose fields are stored encrypted: records `charge KEY CARD`.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(encrypted = true)]
pub struct Charge {
    pub log: String,
    pub key: String,
    pub card: String,
}

impl Perform for Charge {
    type Error = std::convert::Infallible;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        record(&self.log, &format!("charge {} {}", self.key, self.card));
        Ok(())
    }
}

/// A workflow step with an output: records `square N` and sets its result to N².
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct SquareStep {
    pub log: String,
    pub n: i64,
}

impl Perform for SquareStep {
    type Error = dj::Error;
    fn perform(&self, ctx: &Context) -> Result<(), dj::Error> {
        record(&self.log, &format!("square {}", self.n));
        ctx.set_result(&(self.n * self.n))
    }
}

/// A workflow step that reads its dependencies' outputs: records `sum S`, the sum of the
/// results of the steps named in `steps`.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct SumOf {
    pub log: String,
    pub steps: Vec<String>,
}

impl Perform for SumOf {
    type Error = dj::Error;
    fn perform(&self, ctx: &Context) -> Result<(), dj::Error> {
        let mut sum = 0i64;
        for step in &self.steps {
            sum += ctx.dependency_result::<i64>(step)?;
        }
        record(&self.log, &format!("sum {sum}"));
        ctx.set_result(&sum)
    }
}

/// A batch job that adds `more` jobs like itself (with `more - 1`) to its own batch, then
/// records `grew KEY`.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Grows {
    pub log: String,
    pub key: String,
    pub more: u32,
}

impl Perform for Grows {
    type Error = dj::Error;
    fn perform(&self, ctx: &Context) -> Result<(), dj::Error> {
        if self.more > 0 {
            let batch = ctx.workflow_id()?.expect("a batch's job");
            let db = ctx.db().expect("a worker's job");
            let children = (0..self.more).map(|i| Grows {
                log: self.log.clone(),
                key: format!("{}.{i}", self.key),
                more: self.more - 1,
            });
            db.add_to_batch(batch, children)?;
        }
        record(&self.log, &format!("grew {}", self.key));
        Ok(())
    }
}
