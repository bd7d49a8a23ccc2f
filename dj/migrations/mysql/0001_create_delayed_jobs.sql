-- dj 0001: the delayed_jobs table, with delayed_job's columns and two of dj's own. See the
-- PostgreSQL schema for what each column means.
--
-- MySQL/MariaDB (InnoDB). Times are DATETIME(6) holding UTC: the backend sets the session
-- time_zone to '+00:00', so CURRENT_TIMESTAMP(6) defaults are UTC too (a session left at
-- another time zone would write local time into them). Text compared as a key uses
-- utf8mb4_bin, so that comparisons are case- and accent-sensitive as on PostgreSQL; note
-- that utf8mb4_bin is a PAD SPACE collation: 'a' and 'a ' compare equal.
--
-- DDL commits implicitly on MySQL, so a migration file is not one transaction: each file is
-- written so that a run cut short can be run again. CREATE TABLE IF NOT EXISTS, INSERT
-- IGNORE and DROP .. IF EXISTS come first; a file's one change to an existing table (ALTER
-- TABLE, whose IF NOT EXISTS forms are MariaDB's only) is a single statement, atomic on
-- its own, and comes last. Only a stop between that statement and the backend's record of
-- the migration leaves a file that a second run refuses (duplicate column or index name):
-- it is applied, and needs only recording.
--
-- MySQL has no partial indexes: each index below holds every row, and the columns the
-- others filter on in their WHERE come first in the key instead.
--
-- No insert trigger: MySQL has no LISTEN/NOTIFY (PostgreSQL's delayed_jobs_notify sends one
-- per inserting statement). Idle workers poll instead, as on SQLite: see 0009.
--
-- No file ends in a comment, and one with nothing to do runs DO 0: a batch that is, or ends
-- in, comments alone may be answered "Query was empty" (error 1065) by a server or driver.
CREATE TABLE IF NOT EXISTS delayed_jobs (
    -- Ids are never reused: InnoDB keeps the AUTO_INCREMENT counter across restarts (MySQL
    -- 8.0, MariaDB 10.2.4 and later; older servers reset it to max(id) + 1, which a held
    -- workflow step's id, see 0020, could then meet again).
    id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    priority     INT          NOT NULL DEFAULT 0,
    attempts     INT          NOT NULL DEFAULT 0,
    handler      LONGTEXT     NOT NULL,
    last_error   LONGTEXT,
    run_at       DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    locked_at    DATETIME(6),
    failed_at    DATETIME(6),
    -- "[prefix ]host:HOST pid:PID": a host name alone may be 255 bytes.
    locked_by    VARCHAR(512),
    -- Queue names are 1 to 255 bytes (dj's rule), so 255 characters always hold one.
    queue        VARCHAR(255),
    created_at   DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at   DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    -- dj: the registered job name.
    name         VARCHAR(255) NOT NULL,
    -- dj: the job's own max_run_time in seconds; bounds its lock.
    max_run_time INT,

    -- The claim's index: WHERE failed_at IS NULL AND locked_at IS NULL AND run_at <= now AND
    -- priority BETWEEN lo AND hi ORDER BY priority, run_at, id LIMIT n FOR UPDATE SKIP LOCKED
    -- is an equality on the first two columns (IS NULL), a range on priority, and a walk in
    -- claim order that stops after n rows, run_at checked in each index entry. Checked on
    -- MariaDB 10.11 with 100,000 rows (40 % ready, 40 % scheduled, 10 % running, 10 % failed;
    -- 8 queues and none; priorities -5 to 5; 9 % keyed), claiming 100 with the priority range
    -- open: EXPLAIN type ref on (failed_at, locked_at), key_len 18, "Using index condition;
    -- Using where", no filesort; ANALYZE read 109 entries (the keyed rows among them are
    -- passed over). With a narrow range (2 to 3) it is a range on priority (key_len 30), or the
    -- optimizer takes the NULL-key part of delayed_jobs_key_heads (0019), no filesort either.
    -- Leading with failed_at, it also serves the failed rows (`jobs --state failed`, `retry
    -- --failed`, the prune's failed_at < cutoff ORDER BY failed_at: a range, no sort) and the
    -- running ones (failed_at IS NULL AND locked_at < expiry), so the other backends'
    -- delayed_jobs_failed is not needed here. A claim rewrites locked_at, which moves the
    -- row's entry here, as SQLite's partial index (WHERE locked_at IS NULL) drops it.
    INDEX delayed_jobs_ready (failed_at, locked_at, priority, run_at, id),

    -- The claim for workers of listed queues: the same walk within one queue (queue = ? is one
    -- more equality in front: EXPLAIN type ref, key_len 1041, no filesort, 109 entries read
    -- for 100). One range cannot give several queues' rows in claim order: with queue IN
    -- (..) the optimizer either walks delayed_jobs_ready filtering on queue (497 entries read
    -- for 100 with 2 of the 8 queues) or reads those queues' ranges and sorts them all. So,
    -- as on PostgreSQL, read each queue apart, (SELECT .. WHERE queue = ? .. ORDER BY
    -- priority, run_at, id LIMIT n) UNION ALL (..) ORDER BY priority, run_at, id LIMIT n:
    -- each part an ordered walk, the sort at most n rows per queue. Also counts a queue's
    -- running rows for queue limits.
    INDEX delayed_jobs_queue_ready (queue, failed_at, locked_at, priority, run_at, id),

    -- Locked rows by worker, for releasing one worker's locks and rescuing a dead one's.
    INDEX delayed_jobs_locked (locked_by)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;
