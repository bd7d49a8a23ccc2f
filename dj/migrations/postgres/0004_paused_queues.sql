-- Paused queues: a claim skips the ready jobs of a queue listed here (`worker pause QUEUE`)
-- until it is resumed (`worker resume QUEUE`). Running jobs are not touched. Kept in the
-- database, so a pause holds across restarts and hosts; jobs without a queue cannot be paused.
CREATE TABLE IF NOT EXISTS dj_paused_queues (
    queue      text        PRIMARY KEY,
    paused_at  timestamptz NOT NULL DEFAULT now()
);
