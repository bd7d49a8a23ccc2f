-- dj 0005: job control (unique jobs, concurrency limits, snooze, cancel).

-- snoozes: how often the job asked to run later (`JobError::snooze`). A snooze is not a
-- failed attempt: `attempts` is unchanged; `snoozes` is bounded by the worker's max_snoozes.
--
-- unique_key, unique_running: for unique jobs (`.unique(key)`, `#[job(unique = ..)]`; the
-- key is scoped by the job's name). While a key is set, no other row may carry it (the index
-- below), so an enqueue with that key finds this row instead (and may replace its payload).
-- The claim clears the key unless unique_running (`unique_until_done`): by default a key is
-- held only while the job waits to start. A permanent failure (or a cancel) clears it; a
-- finished job's row is deleted, which frees the key.
--
-- concurrency_key, concurrency_limit: at most concurrency_limit rows with this key run at
-- once, across every worker (`#[job(concurrency_key = .., concurrency = N)]`).
ALTER TABLE delayed_jobs
    ADD COLUMN IF NOT EXISTS snoozes integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS unique_key text,
    ADD COLUMN IF NOT EXISTS unique_running boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS concurrency_key text,
    ADD COLUMN IF NOT EXISTS concurrency_limit integer;

-- The uniqueness itself: an insert with a held key conflicts on this index (ON CONFLICT),
-- so two concurrent enqueues of one key can never both insert. Partial: rows without a key
-- (nearly all) are not in it, and the claim, which leaves NULL keys NULL, stays a HOT update.
CREATE UNIQUE INDEX IF NOT EXISTS delayed_jobs_unique ON delayed_jobs (unique_key)
    WHERE unique_key IS NOT NULL;

-- The limited claim counts the running rows of each key it may start; this finds them.
CREATE INDEX IF NOT EXISTS delayed_jobs_concurrency ON delayed_jobs (concurrency_key)
    WHERE concurrency_key IS NOT NULL AND failed_at IS NULL;

-- Per-queue limits (`worker limit QUEUE N`): at most max_running jobs of the queue run at
-- once across every worker. Claims of limited jobs (a queue listed here, or a row with a
-- concurrency_key) are made one at a time across the cluster (a transaction-scoped advisory
-- lock), counting running rows after the lock is taken; other claims never take such rows.
CREATE TABLE IF NOT EXISTS dj_queue_limits (
    queue        text        PRIMARY KEY,
    max_running  integer     NOT NULL CHECK (max_running > 0),
    set_at       timestamptz NOT NULL DEFAULT now()
);

-- Cancel requests for running jobs (`worker cancel ID`): the worker holding the job polls for
-- its running ids here, twice a second, and cancels the job (`ctx.is_cancelled()`, an async
-- job's future dropped). A cancelled job fails for good with last_error "cancelled" and is
-- kept. The rescue pass deletes requests whose job is no longer running.
CREATE TABLE IF NOT EXISTS dj_cancels (
    job_id        bigint      PRIMARY KEY,
    requested_at  timestamptz NOT NULL DEFAULT now()
);
