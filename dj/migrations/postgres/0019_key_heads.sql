-- dj 0019: keyed jobs are claimed round-robin between keys; priority aging.
--
-- The limited claim walks the distinct keys of the keyed rows (a skip scan: the next key after
-- the last, one index probe each, from where the worker's previous claim stopped) and reads
-- each key's first ready rows in claim order, then takes them by priority, and within a
-- priority one per key in turn: a key with 100,000 waiting jobs no longer holds another key's
-- one job behind its backlog. This index serves both reads. Its keys are compared in byte
-- order (COLLATE "C"), the order the worker keeps its place in.
CREATE INDEX IF NOT EXISTS delayed_jobs_key_heads
    ON delayed_jobs (concurrency_key COLLATE "C", priority, run_at)
    WHERE concurrency_key IS NOT NULL AND failed_at IS NULL;

-- The keyed rows in claim order, which the claim no longer reads.
DROP INDEX IF EXISTS delayed_jobs_keyed_ready;

-- Priority aging (`--priority-aging`), done by one worker at a time.
INSERT INTO dj_maintenance (task) VALUES ('aging') ON CONFLICT DO NOTHING;
