-- dj 0019: keyed jobs are claimed round-robin between keys (see the PostgreSQL schema).
CREATE INDEX IF NOT EXISTS delayed_jobs_key_heads
    ON delayed_jobs (concurrency_key, priority, run_at)
    WHERE concurrency_key IS NOT NULL AND failed_at IS NULL;

DROP INDEX IF EXISTS delayed_jobs_keyed_ready;
