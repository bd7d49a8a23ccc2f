-- dj 0013: job results (see the PostgreSQL schema). Times are UTC text, as in delayed_jobs;
-- `value` is the recorded JSON text.
CREATE TABLE IF NOT EXISTS dj_results (
    job_id      INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('succeeded', 'failed')),
    value       TEXT,
    error       TEXT,
    finished_at TEXT    NOT NULL
);

CREATE INDEX IF NOT EXISTS dj_results_finished ON dj_results (finished_at);
