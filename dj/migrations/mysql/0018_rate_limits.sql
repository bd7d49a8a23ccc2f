-- dj 0018: rate limits: at most N starts per period, per concurrency key and per queue. See
-- the PostgreSQL schema for what each column and table means.

-- name: a queue (kind 'queue') or a concurrency key (kind 'key'), so as long as a key.
CREATE TABLE IF NOT EXISTS dj_rate_limits (
    kind        VARCHAR(5)   NOT NULL CHECK (kind IN ('queue', 'key')),
    name        VARCHAR(512) NOT NULL,
    max_starts  INT          NOT NULL CHECK (max_starts > 0),
    period_ms   INT          NOT NULL CHECK (period_ms > 0),
    set_at      DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (kind, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- bucket: 'key:KEY' or 'queue:QUEUE'. `until` is a reserved word on MySQL (REPEAT .. UNTIL;
-- MariaDB takes it bare): every statement must quote it. No primary key, as on the others (two
-- starts of one claim have the same bucket and until): InnoDB clusters the rows on a hidden
-- row id. A server with sql_require_primary_key = ON refuses such a table.
CREATE TABLE IF NOT EXISTS dj_rate_starts (
    bucket   VARCHAR(520) NOT NULL,
    `until`  DATETIME(6)  NOT NULL,
    INDEX dj_rate_starts_bucket (bucket, `until`),
    INDEX dj_rate_starts_until (`until`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- A key's rate on its rows (rate_limit starts per rate_period_ms). One statement, last (0001).
ALTER TABLE delayed_jobs
    ADD COLUMN rate_limit     INT,
    ADD COLUMN rate_period_ms INT;
