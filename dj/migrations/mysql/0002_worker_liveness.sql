-- dj 0002: worker liveness (see the PostgreSQL schema for what each column means).
CREATE TABLE IF NOT EXISTS dj_workers (
    name         VARCHAR(512) NOT NULL PRIMARY KEY,   -- as written to delayed_jobs.locked_by
    host         VARCHAR(255) NOT NULL,
    pid          INT          NOT NULL,
    queues       TEXT,                                -- comma-separated; NULL: every queue
    version      VARCHAR(255) NOT NULL,
    started_at   DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    heartbeat_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    running      INT          NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- One worker at a time per maintenance pass: the conditional UPDATE that finds ran_at old
-- enough wins it. DATETIME has no -infinity (PostgreSQL's default): the epoch stands for
-- "never", older than any pass.
CREATE TABLE IF NOT EXISTS dj_maintenance (
    task    VARCHAR(64)  NOT NULL PRIMARY KEY,
    ran_at  DATETIME(6)  NOT NULL DEFAULT '1970-01-01 00:00:00.000000',
    ran_by  VARCHAR(512)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;
INSERT IGNORE INTO dj_maintenance (task) VALUES ('rescue'), ('orphans');

-- started_at, crashes: see the PostgreSQL schema. Not indexed, so a claim (which clears
-- started_at) touches no index for them. One statement, last (see 0001).
ALTER TABLE delayed_jobs
    ADD COLUMN started_at DATETIME(6),
    ADD COLUMN crashes    INT NOT NULL DEFAULT 0;
