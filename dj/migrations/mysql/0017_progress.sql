-- dj 0017: progress (see the PostgreSQL schema). A message is at most 200 bytes (dj's limit).
CREATE TABLE IF NOT EXISTS dj_progress (
    job_id     BIGINT       NOT NULL PRIMARY KEY,
    fraction   DOUBLE       NOT NULL,
    message    VARCHAR(255) NOT NULL,
    updated_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;
