-- dj 0009: wake-ups. MySQL has no LISTEN/NOTIFY, so idle workers poll, as on SQLite, a
-- number that grows whenever rows may have become claimable: max(id) of delayed_jobs, which
-- every insert raises while its row is there (SELECT max(id) is one descent of the primary
-- key; the AUTO_INCREMENT that information_schema shows is cached on MySQL 8 and may lag),
-- plus this counter, which dj's retry, run now, unlock, release and resume move in their own
-- transactions, as does the release of a held workflow step (its row comes back under its
-- old, lower id). Claims and completions move neither.
CREATE TABLE IF NOT EXISTS dj_wakeups (
    id  INT    NOT NULL PRIMARY KEY CHECK (id = 1),
    n   BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;
INSERT IGNORE INTO dj_wakeups (id, n) VALUES (1, 0);
