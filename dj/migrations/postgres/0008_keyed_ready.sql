-- dj 0008: an index for the limited claim.

-- dj: keyed jobs (a concurrency_key) in claim order. The limited claim takes its candidates
-- from two ordered sources: each limited queue's part of delayed_jobs_queue_ready, and the
-- keyed rows through this index. Without it, keyed rows in claim order meant either walking
-- delayed_jobs_ready past every unkeyed row ahead of them or sorting every keyed row; which
-- one the planner picked depended on its statistics, and the walk read 400,000 rows per claim
-- in a million-row backlog. Partial: unkeyed rows (most) are not in it, and no column a
-- claim or a completion changes is, so those updates stay HOT.
CREATE INDEX IF NOT EXISTS delayed_jobs_keyed_ready
    ON delayed_jobs (priority, run_at)
    WHERE concurrency_key IS NOT NULL AND failed_at IS NULL;
