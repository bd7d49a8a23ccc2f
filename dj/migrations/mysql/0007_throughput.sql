-- dj 0007: throughput, for the dashboard and `worker top` (see the PostgreSQL schema): one
-- row per minute (a UTC DATETIME with zero seconds), added to at each heartbeat.
CREATE TABLE IF NOT EXISTS dj_throughput (
    minute     DATETIME(6) NOT NULL PRIMARY KEY,
    succeeded  BIGINT      NOT NULL DEFAULT 0,
    failed     BIGINT      NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;
