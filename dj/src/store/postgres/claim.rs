//! The claim: limited jobs first (in a transaction of their own, behind the cluster-wide
//! lock), then plain ones with the room left. The SQL is [`super::sql::claim`]'s.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::types::Type;

use super::pool::{Session, Sql};
use super::rows::job_row;
use super::sql::claim::{
    CLAIM, CLAIM_FROM, CLAIM_LIMITED, CLAIM_LIMITED_QUEUES, CLAIM_QUEUES, LIMITED_CLAIM_LOCK,
    LIMITED_WORK, NO_JIT,
};
use super::PgStore;
use crate::error::Result;
use crate::model::JobRow;
use crate::store::ClaimParams;

/// The claims' parameters: worker, min and max priority, limit, then (plain claim) queues or
/// (limited claim) the candidate window and queues.
const PLAIN_TYPES: [Type; 5] = [
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::INT8,
    Type::TEXT_ARRAY,
];
const LIMITED_TYPES: [Type; 6] = [
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::INT8,
    Type::INT8,
    Type::TEXT_ARRAY,
];

/// [`CLAIM_FROM`]'s parameters: [`PLAIN_TYPES`]' first four, then the floor's key.
const FROM_TYPES: [Type; 6] = [
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::INT8,
    Type::INT4,
    Type::TIMESTAMPTZ,
];

/// How long the every-queue claim may walk from its floor before it walks from the top again.
/// A row made ready below the floor (a job of a more urgent priority, one run now, retried or
/// released with an earlier `run_at`) waits at most this long while a backlog is worked.
const FLOOR_RESCAN: Duration = Duration::from_secs(1);

/// Where the every-queue claim starts its index walk. After a claim that took as many rows as
/// it asked for (a backlog), every ready row ahead of the smallest key it took was taken, by
/// this claim or by others: the next claim starts there ([`CLAIM_FROM`]). A claim that took
/// fewer, and any claim [`FLOOR_RESCAN`] after the last walk from the top, walks from the top.
#[derive(Debug, Default)]
pub(super) struct ClaimFloor {
    state: Mutex<FloorState>,
}

#[derive(Debug, Default)]
struct FloorState {
    /// The smallest (priority, run_at) the last claim took, when it filled its limit.
    key: Option<(i32, SystemTime)>,
    /// When the claim last walked from the top.
    top_at: Option<Instant>,
}

impl ClaimFloor {
    /// The key to claim from, or none: walk from the top.
    fn start(&self) -> Option<(i32, SystemTime)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match (state.key, state.top_at) {
            (Some(key), Some(at)) if at.elapsed() < FLOOR_RESCAN => Some(key),
            _ => None,
        }
    }

    /// What a claim from `from` (none: the top) of `limit` rows took.
    fn claimed(&self, from: Option<(i32, SystemTime)>, rows: &[JobRow], limit: i64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if from.is_none() {
            state.top_at = Some(Instant::now());
        }
        state.key = if rows.len() as i64 >= limit {
            rows.iter().map(|r| (r.priority, r.run_at)).min()
        } else {
            None
        };
    }
}

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

impl PgStore {
    /// Limited jobs first (their limits bound how many), then the rest with the room left.
    pub(super) fn claim(&self, p: &ClaimParams<'_>) -> Result<Vec<JobRow>> {
        let min = p.min_priority.unwrap_or(i32::MIN);
        let max = p.max_priority.unwrap_or(i32::MAX);
        let mut jobs: Vec<JobRow> = self.run(async |conn: &mut Session| {
            let mut jobs = Vec::new();
            if self.limited.due() {
                let rows = conn.query(Sql::Fixed(LIMITED_WORK), &[], &[]).await?;
                let any = rows.first().is_some_and(|r| r.get::<_, bool>(0));
                self.limited.found(any);
                if any {
                    jobs = claim_limited(conn, p, min, max).await?;
                }
            }
            let limit = (p.limit - jobs.len()) as i64;
            if limit > 0 {
                jobs.extend(claim_plain(conn, p, min, max, limit, &self.floor).await?);
            }
            Ok(jobs)
        })?;
        crate::store::claim_order(&mut jobs);
        Ok(jobs)
    }
}

/// The plain claim: one statement for every queue (from the floor while a backlog is
/// worked); for listed queues, in a transaction of its own without JIT.
async fn claim_plain(
    conn: &mut Session,
    p: &ClaimParams<'_>,
    min: i32,
    max: i32,
    limit: i64,
    floor: &ClaimFloor,
) -> PgResult<Vec<JobRow>> {
    if p.queues.is_empty() {
        let from = floor.start();
        let rows = match &from {
            None => {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                    [&p.worker, &min, &max, &limit];
                conn.query(Sql::Fixed(CLAIM), &PLAIN_TYPES[..4], &params)
                    .await?
            }
            Some((priority, run_at)) => {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
                    [&p.worker, &min, &max, &limit, priority, run_at];
                conn.query(Sql::Fixed(CLAIM_FROM), &FROM_TYPES, &params)
                    .await?
            }
        };
        let rows: Vec<JobRow> = rows.iter().map(job_row).collect();
        floor.claimed(from, &rows, limit);
        return Ok(rows);
    }
    let tx = conn.transaction().await?;
    tx.batch_execute(NO_JIT).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&p.worker, &min, &max, &limit, &p.queues];
    let rows = tx
        .query(Sql::Fixed(CLAIM_QUEUES), &PLAIN_TYPES, &params)
        .await?;
    tx.commit().await?;
    Ok(rows.iter().map(job_row).collect())
}

/// The limited claim, in a transaction of its own behind the cluster-wide lock.
async fn claim_limited(
    conn: &mut Session,
    p: &ClaimParams<'_>,
    min: i32,
    max: i32,
) -> PgResult<Vec<JobRow>> {
    let limit = p.limit as i64;
    // Candidates read beyond the claim size, so that jobs of keys at their limit do not
    // hide the startable ones behind them.
    let window = (limit * 4).max(100);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&p.worker, &min, &max, &limit, &window, &p.queues];
    let (sql, n) = if p.queues.is_empty() {
        (CLAIM_LIMITED, 5)
    } else {
        (CLAIM_LIMITED_QUEUES, 6)
    };
    let tx = conn.transaction().await?;
    tx.batch_execute(LIMITED_CLAIM_LOCK).await?;
    let rows = tx
        .query(Sql::Fixed(sql), &LIMITED_TYPES[..n], &params[..n])
        .await?;
    tx.commit().await?;
    Ok(rows.iter().map(job_row).collect())
}
