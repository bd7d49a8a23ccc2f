//! The insert, once for every driver library. [`InsertPlan`] turns the rows into statements
//! (SQL text and the values to bind) and decides whether they must run in a transaction;
//! [`insert`] runs a plan through an [`Executor`], a driver library's adapter, which only
//! sends statements and opens transactions. dj's pooled session and a caller's own client or
//! transaction (`targets`) go through the same trait, as River's drivers go through its
//! `UnwrapExecutor`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::sql::insert::{INSERT_MANY, INSERT_ONE, INSERT_UNIQUE};
use crate::model::{EnqueueOutcome, JobId, NewJob};

/// Columns of a batch insert, one array per column.
struct InsertArrays<'a> {
    names: Vec<&'a str>,
    handlers: Vec<&'a str>,
    priorities: Vec<i32>,
    queues: Vec<Option<&'a str>>,
    /// Absolute run times as unix seconds (one text for every driver: no time crate needed).
    at: Vec<Option<f64>>,
    delays: Vec<f64>,
    max_run_times: Vec<Option<i32>>,
    concurrency_keys: Vec<Option<&'a str>>,
    concurrency_limits: Vec<Option<i32>>,
    rate_limits: Vec<Option<i32>>,
    rate_periods: Vec<Option<i32>>,
    unique_keys: Vec<&'a str>,
    unique_until_done: Vec<bool>,
}

impl<'a> InsertArrays<'a> {
    fn of(rows: impl ExactSizeIterator<Item = &'a NewJob>) -> Self {
        let n = rows.len();
        let mut a = InsertArrays {
            names: Vec::with_capacity(n),
            handlers: Vec::with_capacity(n),
            priorities: Vec::with_capacity(n),
            queues: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            delays: Vec::with_capacity(n),
            max_run_times: Vec::with_capacity(n),
            concurrency_keys: Vec::with_capacity(n),
            concurrency_limits: Vec::with_capacity(n),
            rate_limits: Vec::with_capacity(n),
            rate_periods: Vec::with_capacity(n),
            unique_keys: Vec::new(),
            unique_until_done: Vec::new(),
        };
        for row in rows {
            let (at, delay) = row.run_at.values();
            a.names.push(row.name);
            a.handlers.push(&row.handler);
            a.priorities.push(row.priority);
            a.queues.push(row.queue.as_deref());
            a.at.push(at);
            a.delays.push(delay);
            a.max_run_times.push(row.max_run_time);
            a.concurrency_keys
                .push(row.concurrency.as_ref().map(|(key, _)| key.as_str()));
            a.concurrency_limits
                .push(row.concurrency.as_ref().map(|(_, limit)| *limit));
            a.rate_limits.push(row.rate.map(|rate| rate.max_starts));
            a.rate_periods.push(row.rate.map(|rate| rate.period_ms));
            if let Some(unique) = &row.unique {
                a.unique_keys.push(&unique.key);
                a.unique_until_done.push(unique.until_done);
            }
        }
        a
    }
}

/// One value to bind: a column's array, or (for [`INSERT_ONE`]) its first element as a
/// scalar. Each adapter maps these few kinds to its library's types; the list itself is
/// spelled once, in [`InsertStep::binds`].
#[derive(Clone, Copy)]
pub(crate) enum Bind<'s> {
    Text(&'s [&'s str]),
    NullText(&'s [Option<&'s str>]),
    Int(&'s [i32]),
    NullInt(&'s [Option<i32>]),
    Float(&'s [f64]),
    NullFloat(&'s [Option<f64>]),
    Bools(&'s [bool]),
    /// A scalar flag: the unique insert's replace policy (`$14`).
    Flag(bool),
}

/// One statement of an insert: plain rows, or unique rows of one policy with each key at
/// most once (a statement's ON CONFLICT cannot meet one row twice), and where its rows go in
/// the caller's list.
pub(crate) struct InsertStep<'a> {
    a: InsertArrays<'a>,
    /// `None` for plain rows; for unique rows, whether a duplicate replaces the waiting job.
    replace: Option<bool>,
    positions: Vec<usize>,
    /// One plain row binds scalars ([`INSERT_ONE`]) where the adapter says so.
    scalars: bool,
}

impl InsertStep<'_> {
    pub(crate) fn sql(&self) -> &'static str {
        match self.replace {
            Some(_) => INSERT_UNIQUE,
            None if self.scalars => INSERT_ONE,
            None => INSERT_MANY,
        }
    }

    /// Whether [`InsertStep::binds`] are scalars (their first element each), not arrays.
    pub(crate) fn scalars(&self) -> bool {
        self.scalars
    }

    /// The values for `$1`, `$2`, ... in order: the one bind list of every driver.
    pub(crate) fn binds(&self) -> Vec<Bind<'_>> {
        let a = &self.a;
        let mut binds = vec![
            Bind::Text(&a.names),
            Bind::Text(&a.handlers),
            Bind::Int(&a.priorities),
            Bind::NullText(&a.queues),
            Bind::NullFloat(&a.at),
            Bind::Float(&a.delays),
            Bind::NullInt(&a.max_run_times),
            Bind::NullText(&a.concurrency_keys),
            Bind::NullInt(&a.concurrency_limits),
            Bind::NullInt(&a.rate_limits),
            Bind::NullInt(&a.rate_periods),
        ];
        if let Some(replace) = self.replace {
            binds.extend([
                Bind::Text(&a.unique_keys),
                Bind::Bools(&a.unique_until_done),
                Bind::Flag(replace),
            ]);
        }
        binds
    }

    /// Puts each row's outcome (`(id, code)` in the statement's order) in its place.
    fn place(&self, out: &mut [EnqueueOutcome], got: Vec<(JobId, i32)>) {
        for (&at, (id, code)) in self.positions.iter().zip(got) {
            out[at] = EnqueueOutcome::from_code(id, code);
        }
    }
}

/// How an adapter wants its statements shaped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Plain rows per statement (`usize::MAX`: one statement for all of them).
    pub(crate) batch: usize,
    /// One plain row binds scalars ([`INSERT_ONE`]); false: arrays always (one bind list for
    /// a library that types its binds statically).
    pub(crate) scalars: bool,
}

impl Shape {
    /// Plain rows in batches of [`crate::INSERT_BATCH`], one row by scalars: dj's own pool
    /// (and cron), and the sync `postgres` client.
    pub(crate) const BATCHED: Shape = Shape {
        batch: crate::INSERT_BATCH,
        scalars: true,
    };
}

/// The statements that insert some rows, in order, and the rule for running them.
pub(crate) struct InsertPlan<'a> {
    rows: usize,
    steps: Vec<InsertStep<'a>>,
}

impl<'a> InsertPlan<'a> {
    /// Plain rows in batches of `shape.batch`; unique rows grouped by policy, a later row
    /// with a key already in the call going to a later statement (so it meets the earlier one
    /// as a duplicate, as a later call would).
    pub(crate) fn new(rows: &'a [NewJob], shape: Shape) -> Self {
        // (replace, round) → positions; plain rows are (None, 0), first.
        type Group = (Option<bool>, usize);
        let mut groups: Vec<(Group, Vec<usize>)> = vec![((None, 0), Vec::new())];
        let mut rounds: std::collections::HashMap<&str, usize> = Default::default();
        for (i, row) in rows.iter().enumerate() {
            let group = match &row.unique {
                None => (None, 0),
                Some(unique) => {
                    let round = rounds.entry(unique.key.as_str()).or_insert(0);
                    *round += 1;
                    (Some(unique.replace), *round)
                }
            };
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, positions)) => positions.push(i),
                None => groups.push((group, vec![i])),
            }
        }
        let mut steps = Vec::new();
        for ((replace, _), positions) in groups {
            for chunk in positions.chunks(shape.batch) {
                steps.push(InsertStep {
                    a: InsertArrays::of(chunk.iter().map(|&i| &rows[i])),
                    replace,
                    scalars: shape.scalars && replace.is_none() && chunk.len() == 1,
                    positions: chunk.to_vec(),
                });
            }
        }
        InsertPlan {
            rows: rows.len(),
            steps,
        }
    }

    /// The all-or-none rule: one statement is atomic on its own; several run in a
    /// transaction, or a savepoint inside the caller's.
    pub(crate) fn needs_transaction(&self) -> bool {
        self.steps.len() > 1
    }

    /// Runs every statement through `exec`, in order (inside whatever transaction it is in);
    /// each row's outcome in its place.
    pub(crate) async fn run_steps<X: Executor>(
        &self,
        exec: &mut X,
    ) -> Result<Vec<EnqueueOutcome>, X::Error> {
        let mut out = vec![EnqueueOutcome::Inserted(0); self.rows];
        for step in &self.steps {
            let got = exec.query(step).await?;
            step.place(&mut out, got);
        }
        Ok(out)
    }
}

/// What a driver library does for an insert: run one statement, returning each row's
/// `(id, outcome code)`.
pub(crate) trait Executor {
    type Error;
    async fn query(&mut self, step: &InsertStep<'_>) -> Result<Vec<(JobId, i32)>, Self::Error>;
}

/// An executor that can open a transaction (a savepoint when it is inside one already). It
/// is a handle (a reference to the connection), used up by opening one.
pub(crate) trait Atomic: Executor + Sized {
    /// How this library's statements are shaped.
    const SHAPE: Shape;
    /// The open transaction: rolled back if dropped before [`Commit::commit`].
    type Tx: Executor<Error = Self::Error> + Commit<Error = Self::Error>;
    async fn begin(self) -> Result<Self::Tx, Self::Error>;
}

/// Ends an [`Atomic::Tx`] by committing it (releasing it, for a savepoint).
pub(crate) trait Commit {
    type Error;
    async fn commit(self) -> Result<(), Self::Error>;
}

/// Inserts `rows` through `exec`, all or none: the one insert algorithm.
pub(crate) async fn insert<X: Atomic>(
    mut exec: X,
    rows: &[NewJob],
) -> Result<Vec<EnqueueOutcome>, X::Error> {
    let plan = InsertPlan::new(rows, X::SHAPE);
    if !plan.needs_transaction() {
        return plan.run_steps(&mut exec).await;
    }
    let mut tx = exec.begin().await?;
    let out = plan.run_steps(&mut tx).await?;
    tx.commit().await?;
    Ok(out)
}

/// Inserts `rows` through `exec`, which is in a transaction with other statements of its
/// caller's (a workflow's insert).
pub(crate) async fn insert_within<X: Executor>(
    exec: &mut X,
    rows: &[NewJob],
    shape: Shape,
) -> Result<Vec<EnqueueOutcome>, X::Error> {
    InsertPlan::new(rows, shape).run_steps(exec).await
}

/// Runs a sync adapter's insert: its futures never wait (the library blocks instead), so one
/// poll completes them, outside any async runtime.
pub(crate) fn blocking<T>(future: impl Future<Output = T>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("a sync adapter's statement never waits"),
    }
}
