-- Paused queues: a claim skips the ready jobs of a queue listed here (`worker pause QUEUE`)
-- until it is resumed (`worker resume QUEUE`). Running jobs are not touched. Kept in the
-- database, so a pause holds across restarts; jobs without a queue cannot be paused.
CREATE TABLE IF NOT EXISTS dj_paused_queues (
    queue      TEXT PRIMARY KEY,
    paused_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
