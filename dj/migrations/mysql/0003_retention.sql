-- dj 0003: retention of failed rows (kept with --keep-failed): the elected maintenance worker
-- deletes those failed longer ago than --keep-failed-for (14 days), in batches, oldest first.
-- The other backends add delayed_jobs_failed here (again: 0001 made it already). On MySQL
-- delayed_jobs_ready leads with failed_at and finds these rows in failed_at order (a range
-- failed_at < cutoff on it, no sort), so no index is added.
INSERT IGNORE INTO dj_maintenance (task) VALUES ('prune');
