-- dj 0001: the delayed_jobs table, with delayed_job's columns and two of dj's own.
-- Times are UTC text 'YYYY-MM-DD HH:MM:SS.SSS', so they sort and compare as text.
CREATE TABLE IF NOT EXISTS delayed_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids are never reused
    priority    INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    handler     TEXT    NOT NULL,
    last_error  TEXT,
    run_at      TEXT    NOT NULL,
    locked_at   TEXT,
    failed_at   TEXT,
    locked_by   TEXT,
    queue       TEXT,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    -- dj: the registered job name (see the PostgreSQL schema).
    name        TEXT    NOT NULL,
    -- dj: the job's own max_run_time in seconds; bounds its lock.
    max_run_time INTEGER
);

-- The claim's index: ready order over rows that have neither failed nor been locked.
CREATE INDEX IF NOT EXISTS delayed_jobs_ready
    ON delayed_jobs (priority, run_at)
    WHERE failed_at IS NULL AND locked_at IS NULL;

-- Locked rows, for lock expiry and releasing one worker's locks.
CREATE INDEX IF NOT EXISTS delayed_jobs_locked
    ON delayed_jobs (locked_by)
    WHERE locked_by IS NOT NULL;

-- Failed rows, for `jobs --state failed` and `retry --failed`.
CREATE INDEX IF NOT EXISTS delayed_jobs_failed
    ON delayed_jobs (failed_at)
    WHERE failed_at IS NOT NULL;
