-- dj 0018: rate limits: at most N starts per period, per concurrency key and per queue. See
-- the PostgreSQL schema for what each column and table means.
ALTER TABLE delayed_jobs ADD COLUMN rate_limit INTEGER;
ALTER TABLE delayed_jobs ADD COLUMN rate_period_ms INTEGER;

CREATE TABLE IF NOT EXISTS dj_rate_limits (
    kind        TEXT    NOT NULL CHECK (kind IN ('queue', 'key')),
    name        TEXT    NOT NULL,
    max_starts  INTEGER NOT NULL CHECK (max_starts > 0),
    period_ms   INTEGER NOT NULL CHECK (period_ms > 0),
    set_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    PRIMARY KEY (kind, name)
);

CREATE TABLE IF NOT EXISTS dj_rate_starts (
    bucket  TEXT NOT NULL,
    until   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dj_rate_starts_bucket ON dj_rate_starts (bucket, until);
CREATE INDEX IF NOT EXISTS dj_rate_starts_until ON dj_rate_starts (until);
