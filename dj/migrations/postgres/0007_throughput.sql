-- dj 0007: throughput, for the dashboard and `worker top`. Each worker adds the jobs it
-- finished since its last heartbeat to the current minute's row (one upsert per heartbeat,
-- not per job); the prune task deletes minutes older than a day.
CREATE TABLE IF NOT EXISTS dj_throughput (
    minute     timestamptz PRIMARY KEY,
    succeeded  bigint      NOT NULL DEFAULT 0,
    failed     bigint      NOT NULL DEFAULT 0
);
