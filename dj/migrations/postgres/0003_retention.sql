-- Retention of failed rows (kept with --keep-failed): the elected maintenance worker deletes
-- those failed longer ago than --keep-failed-for (14 days), in batches, oldest first.
-- delayed_jobs_failed: finds them without reading the rest of the table. Partial, so only a
-- row's final failure touches it; claims and outcomes stay HOT updates.
CREATE INDEX IF NOT EXISTS delayed_jobs_failed ON delayed_jobs (failed_at)
    WHERE failed_at IS NOT NULL;
INSERT INTO dj_maintenance (task) VALUES ('prune') ON CONFLICT DO NOTHING;
