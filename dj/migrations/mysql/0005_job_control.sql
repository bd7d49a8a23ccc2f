-- dj 0005: job control (unique jobs, concurrency limits, snooze, cancel). See the PostgreSQL
-- schema for what each column means.

-- Per-queue limits (`worker limit QUEUE N`). As on PostgreSQL, claims of limited jobs must be
-- made one at a time across the cluster (there with a transaction-scoped advisory lock; here
-- the backend's choice, e.g. a locking read of one row), counting running rows after it.
-- CHECK constraints are enforced from MySQL 8.0.16 and MariaDB 10.2.
CREATE TABLE IF NOT EXISTS dj_queue_limits (
    queue        VARCHAR(255) NOT NULL PRIMARY KEY,
    max_running  INT          NOT NULL CHECK (max_running > 0),
    set_at       DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Cancel requests for running jobs (`worker cancel ID`).
CREATE TABLE IF NOT EXISTS dj_cancels (
    job_id        BIGINT      NOT NULL PRIMARY KEY,
    requested_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Keys are at most a job name, '/' and 128 bytes (longer keys are stored as a digest), so
-- VARCHAR(512) holds them, and an index on one stays within InnoDB's 3072-byte key limit.
--
-- delayed_jobs_unique: one row per held key. A UNIQUE index allows any number of NULLs in
-- MySQL, so it is the other backends' partial unique index (WHERE unique_key IS NOT NULL) as
-- it stands; a claim that leaves a NULL key NULL does not touch it. Under utf8mb4_bin (PAD
-- SPACE) two keys that differ only by trailing spaces are the same key here.
--
-- delayed_jobs_concurrency: a key's running rows (concurrency_key = ? AND failed_at IS NULL
-- AND locked_at IS NOT NULL), counted from the index alone. 0019 replaces it with a longer
-- index that starts with the same columns.
ALTER TABLE delayed_jobs
    ADD COLUMN snoozes           INT          NOT NULL DEFAULT 0,
    ADD COLUMN unique_key        VARCHAR(512),
    ADD COLUMN unique_running    TINYINT(1)   NOT NULL DEFAULT 0,
    ADD COLUMN concurrency_key   VARCHAR(512),
    ADD COLUMN concurrency_limit INT,
    ADD UNIQUE INDEX delayed_jobs_unique (unique_key),
    ADD INDEX delayed_jobs_concurrency (concurrency_key, failed_at, locked_at);
