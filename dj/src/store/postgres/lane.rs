//! The fast lane: a batch of short jobs claimed by locking its rows in a transaction that
//! stays open while they run, and ended by deleting the finished ones in that transaction.
//! An ordinary claim rewrites every row it takes (`locked_at`, `locked_by`) and the
//! completion deletes it: two row writes per job. The lane's lock writes no new row version,
//! so a job costs one. Measured inside PostgreSQL (1,000-row batches, no client): the
//! ordinary claim and delete 193,000 jobs/s, the lane's lock and delete 420,000.
//!
//! The lane's transaction is its fence: no other worker can claim a row it holds, and if the
//! worker or its connection dies the rows are free again at once (finished jobs whose delete
//! was not committed run again: at-least-once). Its batch record in `dj_lanes` (committed
//! before the jobs start) tells the rescuer which jobs a dead worker was running, so that a
//! job that kills its worker cannot do so for ever unseen. The SQL is in
//! [`super::sql::claim`].

use std::collections::HashSet;
use std::time::Instant;

use tokio_postgres::types::Type;

use super::claim::{every_queue_query, every_queue_rows};
use super::floor::Key;
use super::pool::{Checkout, Held, Session, Sql};
use super::sql::claim::{
    LANE_ABANDONED, LANE_CLAIM, LANE_CLAIM_FROM, LANE_COMPLETE, LANE_FORGET, LANE_LEFTOVERS,
    LANE_LEFTOVERS_FROM, LANE_PROMOTE, LANE_RECORD, LANE_RESCUE,
};
use super::sql::{LANE_ABANDONED_RECORDED, LANE_COMPLETE_RECORDED};
use super::PgStore;
use crate::error::Result;
use crate::io;
use crate::model::JobId;
use crate::store::{ClaimParams, Finished, Lane, LaneClaim, Recorded};

/// How often a worker of lanes looks for the rows a lane never takes (with a unique key, or
/// a crash) among the next it would claim, to claim them the ordinary way: once one of them
/// is that close to the top, it waits this long at most.
const ORDINARY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// When this store last made an ordinary claim, or looked for rows only it takes.
#[derive(Debug, Default)]
pub(super) struct LastOrdinary(std::sync::Mutex<Option<Instant>>);

impl LastOrdinary {
    /// An ordinary claim was made now, or a look found no row only it takes.
    pub(super) fn made(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Whether the next claim should be ordinary: none was made in the last second.
    fn due(&self) -> bool {
        let last = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        last.is_none_or(|at| at.elapsed() >= ORDINARY_EVERY)
    }
}

/// A lane's parts: its connection, whose transaction holds the rows, and its record's id.
struct PgLane {
    held: Held,
    record: i64,
    /// Its rows' places in claim order: those it ends neither completing nor promoting are
    /// free again, behind the claims' floor.
    keys: Vec<(JobId, Key)>,
}

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

impl PgStore {
    pub(super) fn lane_claim(&self, p: &ClaimParams<'_>) -> Result<Option<LaneClaim>> {
        // Listed queues take their ordinary claims, and so do limited work and the rows no
        // lane takes, each looked for once a second. (Claiming the ordinary way whenever a
        // look was due, whatever the rows, rewrote a tenth of them on a machine whose jobs
        // ran slowly.)
        if !p.queues.is_empty() {
            return Ok(None);
        }
        if self.limited.due() && self.run(async |s: &mut Session| self.look_for_limited(s).await)? {
            return Ok(None);
        }
        if self.last_ordinary.due() {
            if self.leftovers_ahead(p)? {
                return Ok(None);
            }
            self.last_ordinary.made();
        }
        io::block_on(async {
            let Some(conn) = self.pool.try_get().await? else {
                return Ok(None);
            };
            let started = Instant::now();
            let from = self.floor.every();
            let (conn, rows) = self
                .run_on(conn, async |s: &mut Session| {
                    s.batch_execute("BEGIN").await?;
                    let names = Some(p.lane_skips);
                    let statements = [LANE_CLAIM, LANE_CLAIM_FROM];
                    every_queue_rows(s, statements, p, p.limit as i64, from, names).await
                })
                .await?;
            self.floor
                .every_claimed(from, started.elapsed(), &rows, p.limit as i64);
            if rows.is_empty() {
                // Rows only the ordinary claim takes may be ready: that claim looks next.
                self.run_on(conn, async |s: &mut Session| {
                    s.batch_execute("ROLLBACK").await
                })
                .await?;
                return Ok(None);
            }
            let ids: Vec<JobId> = rows.iter().map(|r| r.id).collect();
            let record = self
                .run_async(async |s: &mut Session| {
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&p.worker, &ids];
                    let row = s
                        .query(
                            Sql::Fixed(LANE_RECORD),
                            &[Type::TEXT, Type::INT8_ARRAY],
                            &params,
                        )
                        .await?;
                    Ok(row[0].get::<_, i64>(0))
                })
                .await;
            // Without its record the batch must not run: dropping the connection (not
            // pooled mid-transaction) frees its rows.
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    conn.discard();
                    return Err(e);
                }
            };
            let mut rows = rows;
            crate::store::claim_order(&mut rows);
            let keys = rows
                .iter()
                .map(|r| (r.id, (r.priority, r.run_at)))
                .collect();
            Ok(Some(LaneClaim {
                rows,
                lane: Lane(Box::new(PgLane {
                    held: conn.hold(),
                    record,
                    keys,
                })),
            }))
        })
    }

    /// Whether rows only the ordinary claim takes are among the next `p.limit` in claim
    /// order ([`LANE_LEFTOVERS`]).
    fn leftovers_ahead(&self, p: &ClaimParams<'_>) -> Result<bool> {
        let from = self.floor.every();
        self.run(async |s: &mut Session| {
            let rows = every_queue_query(
                s,
                [LANE_LEFTOVERS, LANE_LEFTOVERS_FROM],
                p,
                p.limit as i64,
                from,
                Some(p.lane_skips),
            )
            .await?;
            Ok(rows.first().is_some_and(|r| r.get::<_, bool>(0)))
        })
    }

    pub(super) fn lane_finish(
        &self,
        lane: Lane,
        worker: &str,
        finished: Finished<'_>,
        promote: &[JobId],
    ) -> Result<()> {
        let complete = finished.complete;
        let lane = *lane
            .0
            .downcast::<PgLane>()
            .expect("a PostgreSQL lane from the PostgreSQL store");
        let record = lane.record;
        // The rows it lets go (not started, or let go by their executor) are free again once
        // it ends, whether or not its end is written: the next claim walks from the first.
        // (Once they are: a claim from below them meanwhile would skip them and raise the
        // floor again.)
        let recorded = finished.recorded.iter().map(|r| r.id);
        let ended: HashSet<JobId> = (complete.iter().chain(promote).copied())
            .chain(recorded)
            .collect();
        let (recorded_ids, values) = recorded_columns(finished.recorded);
        let released = (lane.keys.iter())
            .filter(|(id, _)| !ended.contains(id))
            .map(|(_, key)| *key)
            .min();
        let finished = io::block_on(async {
            let conn = self.pool.resume(lane.held);
            let ended = self
                .run_on(conn, async |s: &mut Session| {
                    if !promote.is_empty() {
                        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                            [&worker, &promote];
                        s.execute(
                            Sql::Fixed(LANE_PROMOTE),
                            &[Type::TEXT, Type::INT8_ARRAY],
                            &params,
                        )
                        .await?;
                    }
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                        [&complete, &record];
                    s.execute(
                        Sql::Fixed(LANE_COMPLETE),
                        &[Type::INT8_ARRAY, Type::INT8],
                        &params,
                    )
                    .await?;
                    if !recorded_ids.is_empty() {
                        let keep = &LANE_COMPLETE_RECORDED;
                        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                            [&recorded_ids, &values];
                        s.execute(Sql::Fixed(keep.sql), keep.types, &params).await?;
                    }
                    s.batch_execute("COMMIT").await
                })
                .await;
            match ended {
                Ok(_) => Ok(()),
                Err(e) => {
                    // The transaction is gone with its connection; the record would make the
                    // rescuer count crashes once this worker is gone. Best effort.
                    let _ = self
                        .run_async(async |s: &mut Session| {
                            s.execute(Sql::Fixed(LANE_FORGET), &[Type::INT8], &[&record])
                                .await
                        })
                        .await;
                    Err(e)
                }
            }
        });
        if let Some(key) = released {
            self.floor.every_released(key);
        }
        finished
    }

    pub(super) fn lane_abandoned(
        &self,
        worker: &str,
        ids: &[JobId],
        finished: Finished<'_>,
    ) -> Result<()> {
        let done = finished.complete;
        let (recorded_ids, values) = recorded_columns(finished.recorded);
        self.run(async |s: &mut Session| {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&worker, &ids, &done];
            s.execute(
                Sql::Fixed(LANE_ABANDONED),
                &[Type::TEXT, Type::INT8_ARRAY, Type::INT8_ARRAY],
                &params,
            )
            .await?;
            if !recorded_ids.is_empty() {
                let keep = &LANE_ABANDONED_RECORDED;
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                    [&recorded_ids, &values, &worker];
                s.execute(Sql::Fixed(keep.sql), keep.types, &params).await?;
            }
            Ok(())
        })
    }

    pub(super) fn lane_rescue(&self, worker: Option<&str>) -> Result<u64> {
        let rows = self.run(async |s: &mut Session| {
            s.query(Sql::Fixed(LANE_RESCUE), &[Type::TEXT], &[&worker])
                .await
        })?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }

    /// `operation` on a connection this call holds, within the statement deadline. After an
    /// error or a timeout the connection is closed, not pooled, so that a transaction open
    /// on it ends with it (a timed-out statement is also cancelled on the server).
    async fn run_on<'p, T>(
        &'p self,
        mut conn: Checkout<'p>,
        operation: impl AsyncFnOnce(&mut Session) -> PgResult<T>,
    ) -> Result<(Checkout<'p>, T)> {
        let result = tokio::time::timeout(self.limits.statement, conn.run(operation)).await;
        match result {
            Ok(Ok(value)) => Ok((conn, value)),
            Ok(Err(e)) => {
                conn.discard();
                Err(self.error(e))
            }
            Err(_elapsed) => Err(self.ran_out(conn)),
        }
    }
}

/// Recorded results as the statements bind them: ids, and JSON texts.
fn recorded_columns(recorded: &[Recorded]) -> (Vec<JobId>, Vec<&str>) {
    let ids = recorded.iter().map(|r| r.id).collect();
    let values = recorded.iter().map(|r| r.value.as_str()).collect();
    (ids, values)
}
