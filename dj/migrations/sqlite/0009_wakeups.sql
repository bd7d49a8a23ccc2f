-- dj 0009: wake-ups on SQLite, which has no LISTEN/NOTIFY. A counter that moves whenever
-- rows may have become claimable: each insert (this trigger, whoever inserts), and dj's
-- retry, run now, unlock, release and resume (in their own transactions). An idle worker reads it
-- every 100 ms (one row, no write) and claims as soon as it moves, instead of sleeping its
-- whole `sleep_delay`. Claims and completions do not touch it.
CREATE TABLE IF NOT EXISTS dj_wakeups (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    n   INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO dj_wakeups (id, n) VALUES (1, 0);

CREATE TRIGGER IF NOT EXISTS delayed_jobs_wakeup AFTER INSERT ON delayed_jobs
BEGIN
    UPDATE dj_wakeups SET n = n + 1;
END;
