-- dj 0019: keyed jobs are claimed round-robin between keys (see the PostgreSQL schema);
-- priority aging.
CREATE INDEX IF NOT EXISTS delayed_jobs_key_heads
    ON delayed_jobs (concurrency_key, priority, run_at)
    WHERE concurrency_key IS NOT NULL AND failed_at IS NULL;

DROP INDEX IF EXISTS delayed_jobs_keyed_ready;

-- Priority aging (`--priority-aging`), done by one worker at a time.
INSERT OR IGNORE INTO dj_maintenance (task) VALUES ('aging');
