-- dj 0004: paused queues: a claim skips the ready jobs of a queue listed here (`worker pause
-- QUEUE`) until it is resumed (`worker resume QUEUE`). Running jobs are not touched. Kept in
-- the database, so a pause holds across restarts and hosts; jobs without a queue cannot be
-- paused.
CREATE TABLE IF NOT EXISTS dj_paused_queues (
    queue      VARCHAR(255) NOT NULL PRIMARY KEY,
    paused_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;
