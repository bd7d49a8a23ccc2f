-- dj 0016: attempt history (see the PostgreSQL schema). An attempt's error is at most 4 KiB
-- (dj truncates it), so TEXT (64 KiB) holds it.
CREATE TABLE IF NOT EXISTS dj_attempts (
    job_id      BIGINT       NOT NULL,
    attempt     INT          NOT NULL,
    worker      VARCHAR(512) NOT NULL,
    started_at  DATETIME(6)  NOT NULL,
    finished_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    error       TEXT         NOT NULL,
    PRIMARY KEY (job_id, attempt),
    -- The maintenance worker's prune of the attempts of jobs gone longer than the retention.
    INDEX dj_attempts_finished (finished_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;
