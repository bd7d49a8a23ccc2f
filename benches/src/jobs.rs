//! The jobs the benchmarks run: a no-op, and a no-op that stamps when it started so the
//! pickup-latency workload can measure enqueue-commit → perform-start.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use dj::{Context, Job, Perform};
use serde::{Deserialize, Serialize};

/// Does nothing: what every throughput figure measures is dj's own cost.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Noop {
    pub n: u64,
}

impl Perform for Noop {
    type Error = std::convert::Infallible;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        noop_started();
        Ok(())
    }
}

/// Notes a no-op's start for [`noop_span`].
fn noop_started() {
    let nanos = base().elapsed().as_nanos().max(1) as u64;
    if FIRST_NOOP.load(Ordering::Relaxed) == 0 {
        let _ = FIRST_NOOP.compare_exchange(0, nanos, Ordering::Relaxed, Ordering::Relaxed);
    }
    LAST_NOOP.fetch_max(nanos, Ordering::Relaxed);
}

/// A no-op that records its `n` as its result (`Context::set_result`), counted like [`Noop`].
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Answer {
    pub n: u64,
}

impl Perform for Answer {
    type Error = dj::JobError;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        noop_started();
        ctx.set_result(&self.n)?;
        Ok(())
    }
}

/// When the first [`Noop`] since the last [`reset_noops`] started, in nanoseconds after
/// [`base`] (0: none yet). A work-off's rate from there on leaves the worker's start-up out.
static FIRST_NOOP: AtomicU64 = AtomicU64::new(0);
/// The same for the last [`Noop`] to start.
static LAST_NOOP: AtomicU64 = AtomicU64::new(0);

/// The instant every stamp of this process counts from.
pub fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

pub fn reset_noops() {
    base();
    FIRST_NOOP.store(0, Ordering::Relaxed);
    LAST_NOOP.store(0, Ordering::Relaxed);
}

/// When the first and the last [`Noop`] since [`reset_noops`] started.
pub fn noop_span() -> Option<(Instant, Instant)> {
    let at = |nanos| base() + std::time::Duration::from_nanos(nanos);
    match (
        FIRST_NOOP.load(Ordering::Relaxed),
        LAST_NOOP.load(Ordering::Relaxed),
    ) {
        (0, _) | (_, 0) => None,
        (first, last) => Some((at(first), at(last))),
    }
}

/// The async no-op: an `async fn` job, counted like [`Noop`].
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct AsyncNoop {
    pub n: u64,
}

impl dj::PerformAsync for AsyncNoop {
    type Error = std::convert::Infallible;
    async fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        noop_started();
        Ok(())
    }
}

/// Records the instant its `perform` started, under its sequence number.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Stamp {
    pub seq: usize,
}

impl Perform for Stamp {
    type Error = std::convert::Infallible;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        let now = Instant::now();
        starts()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.seq, now));
        Ok(())
    }
}

/// `(seq, perform started)` of every [`Stamp`] run in this process.
pub fn starts() -> &'static Mutex<Vec<(usize, Instant)>> {
    static STARTS: OnceLock<Mutex<Vec<(usize, Instant)>>> = OnceLock::new();
    STARTS.get_or_init(|| Mutex::new(Vec::new()))
}

/// The table the effect jobs write, (re)created by the `transactional` workload.
pub const CREATE_EFFECTS: &str =
    "DROP TABLE IF EXISTS bench_effects; CREATE TABLE bench_effects (n bigint NOT NULL)";

/// A job with a database effect, completed by dj after it: inserts its `n` into
/// `bench_effects` in a transaction on its executor thread's connection to `url`, commits;
/// then the worker deletes its row, in a transaction of its own.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Effect {
    pub n: u64,
    pub url: String,
}

impl Perform for Effect {
    type Error = dj::JobError;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        noop_started();
        insert_effect(&self.url, self.n, |_| Ok(()))
    }
}

/// [`Effect`], completing its row in the transaction of its insert (`complete_in`).
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(transactional = true)]
pub struct TxEffect {
    pub n: u64,
    pub url: String,
}

impl Perform for TxEffect {
    type Error = dj::JobError;
    fn perform(&self, ctx: &Context) -> Result<(), Self::Error> {
        noop_started();
        insert_effect(&self.url, self.n, |tx| ctx.complete_in(tx))
    }
}

/// Inserts `n` and calls `complete` in one transaction on this thread's connection (opened
/// once per executor thread, as an app's pool would keep it).
fn insert_effect(
    url: &str,
    n: u64,
    complete: impl FnOnce(&mut postgres::Transaction<'_>) -> dj::Result<()>,
) -> Result<(), dj::JobError> {
    thread_local! {
        static CLIENT: RefCell<Option<postgres::Client>> = const { RefCell::new(None) };
    }
    CLIENT.with_borrow_mut(|client| {
        if client.is_none() {
            *client = Some(postgres::Client::connect(url, postgres::NoTls)?);
        }
        let client = client.as_mut().expect("connected above");
        let mut tx = client.transaction()?;
        tx.execute("INSERT INTO bench_effects (n) VALUES ($1)", &[&(n as i64)])?;
        complete(&mut tx)?;
        tx.commit()?;
        Ok(())
    })
}
