-- dj 0006: recurring jobs (`#[job(cron = ..)]`, `Db::add_schedule`). See the PostgreSQL
-- schema for what each column means.
CREATE TABLE IF NOT EXISTS dj_cron (
    name          VARCHAR(255) NOT NULL PRIMARY KEY,
    expression    TEXT         NOT NULL,
    tz            VARCHAR(64)  NOT NULL DEFAULT 'UTC',
    missed        VARCHAR(4)   NOT NULL DEFAULT 'once' CHECK (missed IN ('once', 'skip')),
    job_name      VARCHAR(255) NOT NULL,
    handler       LONGTEXT     NOT NULL,
    queue         VARCHAR(255),
    priority      INT          NOT NULL DEFAULT 0,
    from_code     TINYINT(1)   NOT NULL DEFAULT 0,
    last_fire_at  DATETIME(6),
    next_fire_at  DATETIME(6),
    created_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

INSERT IGNORE INTO dj_maintenance (task) VALUES ('cron');
