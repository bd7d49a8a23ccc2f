-- dj 0007: throughput. See the PostgreSQL schema.
CREATE TABLE IF NOT EXISTS dj_throughput (
    minute     TEXT    PRIMARY KEY,
    succeeded  INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0
);
