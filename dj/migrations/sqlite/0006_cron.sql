-- dj 0006: recurring jobs. See the PostgreSQL schema for what each column means.
CREATE TABLE IF NOT EXISTS dj_cron (
    name          TEXT    PRIMARY KEY,
    expression    TEXT    NOT NULL,
    tz            TEXT    NOT NULL DEFAULT 'UTC',
    missed        TEXT    NOT NULL DEFAULT 'once' CHECK (missed IN ('once', 'skip')),
    job_name      TEXT    NOT NULL,
    handler       TEXT    NOT NULL,
    queue         TEXT,
    priority      INTEGER NOT NULL DEFAULT 0,
    from_code     INTEGER NOT NULL DEFAULT 0,
    last_fire_at  TEXT,
    next_fire_at  TEXT,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

INSERT OR IGNORE INTO dj_maintenance (task) VALUES ('cron');
