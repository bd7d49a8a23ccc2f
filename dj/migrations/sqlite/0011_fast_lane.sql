-- dj 0011: PostgreSQL's 0011 adds the fast lane's batch records, which SQLite does not need (a
-- SQLite worker has no fast lane: one writer at a time, and no row locks to hold), and the
-- maintenance task `reindex`, which SQLite never runs (its REINDEX would block every writer);
-- the row is added here too, so that the two backends' maintenance tables list the same tasks.
INSERT OR IGNORE INTO dj_maintenance (task) VALUES ('reindex');
