-- dj 0013: job results (see the PostgreSQL schema). `value` is the recorded JSON text: a
-- LONGTEXT checked with JSON_VALID, not the JSON type, whose text MySQL 8 rewrites (key
-- order, spacing) and MariaDB stores as LONGTEXT anyway. MySQL has no NOTIFY: an app waiting
-- for a result polls its row by job_id.
CREATE TABLE IF NOT EXISTS dj_results (
    job_id      BIGINT       NOT NULL PRIMARY KEY,
    name        VARCHAR(255) NOT NULL,
    -- 'succeeded' (value set) or 'failed' (error set)
    state       VARCHAR(9)   NOT NULL CHECK (state IN ('succeeded', 'failed')),
    value       LONGTEXT     CHECK (JSON_VALID(value)),
    error       LONGTEXT,
    finished_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    -- The maintenance worker's prune of results older than the retention.
    INDEX dj_results_finished (finished_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;
