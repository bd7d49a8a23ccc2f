-- dj 0002: worker liveness (see the PostgreSQL schema for what each column means).
CREATE TABLE IF NOT EXISTS dj_workers (
    name         TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    queues       TEXT,
    version      TEXT    NOT NULL,
    started_at   TEXT    NOT NULL,
    heartbeat_at TEXT    NOT NULL,
    running      INTEGER NOT NULL DEFAULT 0
);

-- One worker at a time per maintenance pass: the conditional UPDATE that finds ran_at old
-- enough wins it.
CREATE TABLE IF NOT EXISTS dj_maintenance (
    task    TEXT PRIMARY KEY,
    ran_at  TEXT NOT NULL DEFAULT '0000-01-01 00:00:00.000',
    ran_by  TEXT
);
INSERT OR IGNORE INTO dj_maintenance (task) VALUES ('rescue'), ('orphans');

ALTER TABLE delayed_jobs ADD COLUMN started_at TEXT;
ALTER TABLE delayed_jobs ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;
