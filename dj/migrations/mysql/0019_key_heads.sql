-- dj 0019: keyed jobs are claimed round-robin between keys (see the PostgreSQL schema);
-- priority aging.

-- Priority aging (`--priority-aging`), done by one worker at a time.
INSERT IGNORE INTO dj_maintenance (task) VALUES ('aging');

-- delayed_jobs_key_heads: the limited claim's walk of the distinct keys (the next key after
-- the last: concurrency_key > ? AND failed_at IS NULL ORDER BY concurrency_key LIMIT 1, a
-- range whose failed_at is checked in the index entry) and each key's first ready rows
-- (concurrency_key = ? AND failed_at IS NULL AND locked_at IS NULL ORDER BY priority, run_at,
-- id: three equalities, then the walk in claim order). The other backends' index is
-- (concurrency_key, priority, run_at) WHERE concurrency_key IS NOT NULL AND failed_at IS
-- NULL; MySQL has no partial index, so failed_at and locked_at lead instead, which also
-- spares the key's running rows a look at the table. utf8mb4_bin orders keys by code point,
-- which is their UTF-8 byte order (PostgreSQL's COLLATE "C", the order the worker keeps its
-- place in), but for PAD SPACE: keys are compared as if the shorter were padded with spaces,
-- so 'k' and 'k ' are one key, and 'k' followed by a control character sorts before 'k'.
-- Unkeyed rows are here too, under a NULL key, in front of every key: for the plain claim
-- (concurrency_key IS NULL) that part is an ordered walk of unkeyed rows only, which the
-- optimizer sometimes prefers to delayed_jobs_ready.
--
-- On 100,000 rows: a key's first 4, EXPLAIN range on all five columns, key_len 2081, "Using
-- index", no filesort, 4 entries read; the next key, one entry read. The price of locked_at in
-- it: a claim moves the row's entry here too. The UPDATE of a 1,000-row claim took 22 ms
-- with it, 18 ms with this index lacking locked_at (MariaDB 10.11, a busy 2-core machine).
-- Without it a key's head would read its running rows from the table, and counting them
-- would read every waiting row of the key.
--
-- Its first three columns are delayed_jobs_concurrency's (0005), which it therefore replaces:
-- a second index of locked_at would be one more entry to move on every claim. The other
-- backends drop delayed_jobs_keyed_ready here, which MySQL never had (0008).
-- One statement, last (see 0001).
ALTER TABLE delayed_jobs
    ADD INDEX delayed_jobs_key_heads (concurrency_key, failed_at, locked_at, priority, run_at, id),
    DROP INDEX delayed_jobs_concurrency;
