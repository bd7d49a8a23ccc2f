//! The claim: limited jobs first (in a transaction of their own, behind the cluster-wide
//! lock), then plain ones with the room left. The SQL is [`super::sql::claim`]'s.

use tokio_postgres::types::Type;

use super::pool::{Session, Sql};
use super::rows::job_row;
use super::sql::claim::{
    CLAIM, CLAIM_LIMITED, CLAIM_LIMITED_QUEUES, CLAIM_QUEUES, LIMITED_CLAIM_LOCK, LIMITED_WORK,
    NO_JIT,
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
                jobs.extend(claim_plain(conn, p, min, max, limit).await?);
            }
            Ok(jobs)
        })?;
        crate::store::claim_order(&mut jobs);
        Ok(jobs)
    }
}

/// The plain claim: one statement for every queue; for listed queues, in a transaction of
/// its own without JIT.
async fn claim_plain(
    conn: &mut Session,
    p: &ClaimParams<'_>,
    min: i32,
    max: i32,
    limit: i64,
) -> PgResult<Vec<JobRow>> {
    let rows = if p.queues.is_empty() {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&p.worker, &min, &max, &limit];
        conn.query(Sql::Fixed(CLAIM), &PLAIN_TYPES[..4], &params)
            .await?
    } else {
        let tx = conn.transaction().await?;
        tx.batch_execute(NO_JIT).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&p.worker, &min, &max, &limit, &p.queues];
        let rows = tx
            .query(Sql::Fixed(CLAIM_QUEUES), &PLAIN_TYPES, &params)
            .await?;
        tx.commit().await?;
        rows
    };
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
