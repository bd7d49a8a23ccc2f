-- dj 0011: the fast lane's batch records. A worker of short jobs claims a batch by locking
-- its rows in a transaction that stays open while they run (no row is rewritten to claim it)
-- and deletes the finished ones in that same transaction: one row write per job instead of
-- two. What the database keeps of such a batch while it runs is this row, written once when
-- it is claimed and deleted by the transaction that ends it. A row left behind by a worker
-- that is gone names the jobs that were running when it died: the rescuer counts a crash
-- for each of them still waiting, so that they take the ordinary claim next time, where a job
-- that keeps killing its worker is charged an attempt.
CREATE TABLE IF NOT EXISTS dj_lanes (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    worker    text        NOT NULL,
    ids       bigint[]    NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now()
);

-- And the maintenance task `reindex` (`reindex_every`): the elected worker's concurrent
-- rebuild of this table's indexes, won like the others through its row here.
INSERT INTO dj_maintenance (task) VALUES ('reindex') ON CONFLICT DO NOTHING;
