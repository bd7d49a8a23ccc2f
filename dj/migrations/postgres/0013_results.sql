-- dj 0013: job results. A job that records a value (`Context::set_result`) leaves it here when
-- it succeeds, written in the transaction that deletes its row; a job that fails for good
-- under `destroy_failed_jobs` leaves its last error here (a kept failed row carries its own).
-- A row lives until it is older than the workers' `result_retention`, when the elected
-- maintenance worker deletes it. Each write sends NOTIFY dj_results with the job's id, which
-- wakes an app awaiting that result.
CREATE TABLE IF NOT EXISTS dj_results (
    job_id      bigint      PRIMARY KEY,
    name        text        NOT NULL,
    -- 'succeeded' (value set) or 'failed' (error set)
    state       text        NOT NULL CHECK (state IN ('succeeded', 'failed')),
    value       jsonb,
    error       text,
    finished_at timestamptz NOT NULL DEFAULT now()
);

-- The maintenance worker's prune of results older than the retention.
CREATE INDEX IF NOT EXISTS dj_results_finished ON dj_results (finished_at);
