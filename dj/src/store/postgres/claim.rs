//! The claim: limited jobs first (in a transaction of their own, behind the cluster-wide
//! lock), then plain ones with the room left. The SQL is [`super::sql::claim`]'s.

use std::time::{Instant, SystemTime};

use tokio_postgres::types::Type;

use super::floor::{top, ClaimFloor};
use super::pool::{Session, Sql};
use super::rows::job_row;
use super::sql::claim::{
    CLAIM, CLAIM_FROM, CLAIM_LIMITED, CLAIM_LIMITED_QUEUES, CLAIM_QUEUES, CLAIM_QUEUES_FROM,
    LIMITED_CLAIM_LOCK, LIMITED_WORK, NO_JIT, RATE_REFILL,
};
use super::PgStore;
use crate::error::Result;
use crate::model::JobRow;
use crate::store::ClaimParams;

/// The claims' parameters: worker, min and max priority, limit, then (plain claim) queues or
/// (limited claim) the candidate window, the key cursor and queues.
const PLAIN_TYPES: [Type; 5] = [
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::INT8,
    Type::TEXT_ARRAY,
];
const LIMITED_TYPES: [Type; 7] = [
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
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
/// [`CLAIM_QUEUES_FROM`]'s: [`PLAIN_TYPES`], then each queue's floor.
const QUEUES_FROM_TYPES: [Type; 7] = [
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::INT8,
    Type::TEXT_ARRAY,
    Type::INT4_ARRAY,
    Type::TIMESTAMPTZ_ARRAY,
];

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

impl PgStore {
    /// Limited jobs first (their limits bound how many), then the rest with the room left.
    pub(super) fn claim(&self, p: &ClaimParams<'_>) -> Result<Vec<JobRow>> {
        let min = p.min_priority.unwrap_or(i32::MIN);
        let max = p.max_priority.unwrap_or(i32::MAX);
        let mut jobs: Vec<JobRow> = self.run(async |conn: &mut Session| {
            let mut jobs = Vec::new();
            if self.limited.due() && self.look_for_limited(conn).await? {
                let refill;
                let cursor = self.keys.cursor();
                (jobs, refill) = claim_limited(conn, p, min, max, cursor.as_deref()).await?;
                self.refill.set(refill);
                self.keys.claimed(&jobs);
            }
            let limit = (p.limit - jobs.len()) as i64;
            if limit > 0 {
                jobs.extend(claim_plain(conn, p, min, max, limit, &self.floor).await?);
            }
            Ok(jobs)
        })?;
        self.last_ordinary.made();
        crate::store::claim_order(&mut jobs);
        Ok(jobs)
    }
}

impl PgStore {
    /// Whether limited work may be claimable ([`LIMITED_WORK`]), told to the probe.
    pub(super) async fn look_for_limited(&self, conn: &Session) -> PgResult<bool> {
        let rows = conn.query(Sql::Fixed(LIMITED_WORK), &[], &[]).await?;
        let any = rows.first().is_some_and(|r| r.get::<_, bool>(0));
        self.limited.found(any);
        Ok(any)
    }
}

/// The plain claim: one statement for every queue; for listed queues, in a transaction of
/// its own without JIT. Each walks from its floor while a backlog is worked ([`ClaimFloor`]).
async fn claim_plain(
    conn: &mut Session,
    p: &ClaimParams<'_>,
    min: i32,
    max: i32,
    limit: i64,
    floor: &ClaimFloor,
) -> PgResult<Vec<JobRow>> {
    let started = Instant::now();
    if p.queues.is_empty() {
        let from = floor.every();
        let rows = every_queue_rows(conn, [CLAIM, CLAIM_FROM], p, limit, from, None).await?;
        floor.every_claimed(from, started.elapsed(), &rows, limit);
        return Ok(rows);
    }
    let mut queues: Vec<String> = Vec::with_capacity(p.queues.len());
    for q in p.queues {
        if !queues.contains(q) {
            queues.push(q.clone());
        }
    }
    let from = floor.listed(&queues);
    let tx = conn.transaction().await?;
    tx.batch_execute(NO_JIT).await?;
    let rows = if from.iter().all(Option::is_none) {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&p.worker, &min, &max, &limit, &p.queues];
        tx.query(Sql::Fixed(CLAIM_QUEUES), &PLAIN_TYPES, &params)
            .await?
    } else {
        let (priorities, run_ats): (Vec<i32>, Vec<_>) =
            from.iter().map(|f| f.unwrap_or_else(top)).unzip();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &p.worker,
            &min,
            &max,
            &limit,
            &queues,
            &priorities,
            &run_ats,
        ];
        tx.query(Sql::Fixed(CLAIM_QUEUES_FROM), &QUEUES_FROM_TYPES, &params)
            .await?
    };
    tx.commit().await?;
    let rows: Vec<JobRow> = rows.iter().map(job_row).collect();
    floor.listed_claimed(&queues, &from, started.elapsed(), &rows, limit);
    Ok(rows)
}

/// An every-queue claim (`statements`: its text from the top, and from a floor) for `p`'s
/// worker and priorities, up to `limit` rows, from the floor `from` if there is one: the
/// ordinary claim's and the fast lane's (whose statements take one more parameter, `names`,
/// last).
pub(super) async fn every_queue_rows(
    conn: &Session,
    statements: [&'static str; 2],
    p: &ClaimParams<'_>,
    limit: i64,
    from: Option<(i32, SystemTime)>,
    names: Option<&[&'static str]>,
) -> PgResult<Vec<JobRow>> {
    let rows = every_queue_query(conn, statements, p, limit, from, names).await?;
    Ok(rows.iter().map(job_row).collect())
}

/// [`every_queue_rows`]' statement, its rows as they come.
pub(super) async fn every_queue_query(
    conn: &Session,
    statements: [&'static str; 2],
    p: &ClaimParams<'_>,
    limit: i64,
    from: Option<(i32, SystemTime)>,
    names: Option<&[&'static str]>,
) -> PgResult<Vec<tokio_postgres::Row>> {
    let min = p.min_priority.unwrap_or(i32::MIN);
    let max = p.max_priority.unwrap_or(i32::MAX);
    let [top, from_floor] = statements;
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&p.worker, &min, &max, &limit];
    let mut types = FROM_TYPES[..4].to_vec();
    let statement = match &from {
        None => top,
        Some((priority, run_at)) => {
            params.push(priority);
            params.push(run_at);
            types.extend_from_slice(&FROM_TYPES[4..]);
            from_floor
        }
    };
    if let Some(names) = &names {
        params.push(names);
        types.push(Type::TEXT_ARRAY);
    }
    conn.query(Sql::Fixed(statement), &types, &params).await
}

/// The limited claim, in a transaction of its own behind the cluster-wide lock, of keys from
/// `cursor` on; and when it came back short, when a rate's next start frees up
/// ([`RATE_REFILL`]), in seconds.
async fn claim_limited(
    conn: &mut Session,
    p: &ClaimParams<'_>,
    min: i32,
    max: i32,
    cursor: Option<&str>,
) -> PgResult<(Vec<JobRow>, Option<f64>)> {
    let limit = p.limit as i64;
    // Candidates read beyond the claim size (each limited queue's, and keys walked), so that
    // jobs of keys or queues at their limit do not hide the startable ones behind them.
    let window = (limit * 4).max(100);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
        [&p.worker, &min, &max, &limit, &window, &cursor, &p.queues];
    let (sql, n) = if p.queues.is_empty() {
        (CLAIM_LIMITED, 6)
    } else {
        (CLAIM_LIMITED_QUEUES, 7)
    };
    let tx = conn.transaction().await?;
    tx.batch_execute(LIMITED_CLAIM_LOCK).await?;
    let rows = tx
        .query(Sql::Fixed(sql), &LIMITED_TYPES[..n], &params[..n])
        .await?;
    let refill = if rows.len() < p.limit {
        let next = tx.query(Sql::Fixed(RATE_REFILL), &[], &[]).await?;
        next.first().and_then(|r| r.get::<_, Option<f64>>(0))
    } else {
        None
    };
    tx.commit().await?;
    Ok((rows.iter().map(job_row).collect(), refill))
}
