-- dj 0008: an index for the limited claim.

-- dj: keyed jobs (a concurrency_key) in claim order, as on PostgreSQL, where the limited
-- claim takes its keyed candidates through it instead of walking delayed_jobs_ready past
-- every unkeyed row. Partial: unkeyed rows (most) are not in it. Kept in both backends so
-- that a schema version means the same indexes on each.
CREATE INDEX IF NOT EXISTS delayed_jobs_keyed_ready
    ON delayed_jobs (priority, run_at)
    WHERE concurrency_key IS NOT NULL AND failed_at IS NULL;
