-- dj 0018: rate limits: at most N starts per period, per concurrency key and per queue.
--
-- A job's key (its concurrency key: `#[job(concurrency_key = .., rate = "20/s")]`, or its
-- type's name for `#[job(rate = "20/s")]` alone) may carry a rate on its row: rate_limit
-- starts per rate_period_ms milliseconds. Keyed rows are the limited claim's already, so the
-- plain claims and their indexes are unchanged.
ALTER TABLE delayed_jobs ADD COLUMN IF NOT EXISTS rate_limit integer;
ALTER TABLE delayed_jobs ADD COLUMN IF NOT EXISTS rate_period_ms integer;

-- Rates set at run time (`worker rate`, `Db::rate_limit_queue`, `Db::rate_limit_key`): a
-- queue's (kind 'queue'), which sends the queue to the limited claim as dj_queue_limits does,
-- or a key's (kind 'key'), which replaces the rate its rows carry.
CREATE TABLE IF NOT EXISTS dj_rate_limits (
    kind        text        NOT NULL CHECK (kind IN ('queue', 'key')),
    name        text        NOT NULL,
    max_starts  integer     NOT NULL CHECK (max_starts > 0),
    period_ms   integer     NOT NULL CHECK (period_ms > 0),
    set_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
);

-- The starts each rate counts: one row per rate-limited start, in the bucket 'key:KEY' or
-- 'queue:QUEUE', counted until `until` (its claim time plus the rate's period). The limited
-- claim, one at a time cluster-wide, counts a bucket's rows still counting and writes its own
-- in the same statement; expired rows are deleted by the elected maintenance worker.
CREATE TABLE IF NOT EXISTS dj_rate_starts (
    bucket  text        NOT NULL,
    until   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS dj_rate_starts_bucket ON dj_rate_starts (bucket, until);
CREATE INDEX IF NOT EXISTS dj_rate_starts_until ON dj_rate_starts (until);
