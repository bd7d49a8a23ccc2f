-- dj 0017: progress (see the PostgreSQL schema). Times are UTC text, as in delayed_jobs.
CREATE TABLE IF NOT EXISTS dj_progress (
    job_id     INTEGER PRIMARY KEY,
    fraction   REAL    NOT NULL,
    message    TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);
