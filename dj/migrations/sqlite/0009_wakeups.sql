-- dj 0009: wake-ups on SQLite, which has no LISTEN/NOTIFY. An idle worker reads, every
-- 100 ms, a number that grows whenever rows may have become claimable, and claims as soon as
-- it moves: delayed_jobs' AUTOINCREMENT counter in sqlite_sequence, which every insert moves
-- already (whoever inserts, at no extra cost), plus this counter, which dj's retry, run now,
-- unlock, release and resume move in their own transactions. Claims and completions move
-- neither.
CREATE TABLE IF NOT EXISTS dj_wakeups (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    n   INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO dj_wakeups (id, n) VALUES (1, 0);
