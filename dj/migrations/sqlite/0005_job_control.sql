-- dj 0005: job control (unique jobs, concurrency limits, snooze, cancel). See the PostgreSQL
-- schema for what each column means.
ALTER TABLE delayed_jobs ADD COLUMN snoozes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE delayed_jobs ADD COLUMN unique_key TEXT;
ALTER TABLE delayed_jobs ADD COLUMN unique_running INTEGER NOT NULL DEFAULT 0;
ALTER TABLE delayed_jobs ADD COLUMN concurrency_key TEXT;
ALTER TABLE delayed_jobs ADD COLUMN concurrency_limit INTEGER;

-- One row per held key: a unique enqueue looks for the holder first, in the same write
-- transaction as its insert, and the index makes any second row with the key an error.
CREATE UNIQUE INDEX IF NOT EXISTS delayed_jobs_unique ON delayed_jobs (unique_key)
    WHERE unique_key IS NOT NULL;

CREATE INDEX IF NOT EXISTS delayed_jobs_concurrency ON delayed_jobs (concurrency_key)
    WHERE concurrency_key IS NOT NULL AND failed_at IS NULL;

-- Per-queue limits (`worker limit QUEUE N`). SQLite has one writer at a time, so a claim,
-- one write transaction, counts and claims with no other claim in between.
CREATE TABLE IF NOT EXISTS dj_queue_limits (
    queue        TEXT    PRIMARY KEY,
    max_running  INTEGER NOT NULL CHECK (max_running > 0),
    set_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

-- Cancel requests for running jobs (`worker cancel ID`).
CREATE TABLE IF NOT EXISTS dj_cancels (
    job_id        INTEGER PRIMARY KEY,
    requested_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
