-- Retention of failed rows (kept with --keep-failed): the elected maintenance worker deletes
-- those failed longer ago than --keep-failed-for (14 days), in batches, oldest first.
-- delayed_jobs_failed: finds them without reading the rest of the table.
CREATE INDEX IF NOT EXISTS delayed_jobs_failed ON delayed_jobs (failed_at)
    WHERE failed_at IS NOT NULL;
INSERT OR IGNORE INTO dj_maintenance (task) VALUES ('prune');
