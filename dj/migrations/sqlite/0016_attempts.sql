-- dj 0016: attempt history (see the PostgreSQL schema). Times are UTC text, as in
-- delayed_jobs.
CREATE TABLE IF NOT EXISTS dj_attempts (
    job_id      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    worker      TEXT    NOT NULL,
    started_at  TEXT    NOT NULL,
    finished_at TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    PRIMARY KEY (job_id, attempt)
);

CREATE INDEX IF NOT EXISTS dj_attempts_finished ON dj_attempts (finished_at);
