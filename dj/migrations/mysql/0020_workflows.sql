-- dj 0020: workflows: jobs that run only after others have succeeded (a DAG), enqueued
-- together in one transaction (`dj::Workflow`). See the PostgreSQL schema for what each table
-- and column means.
--
-- Where MySQL differs: no triggers. On the other backends
-- triggers on delayed_jobs do the step bookkeeping (a step's row deleted or failed for good
-- finishes the step, counts it for its dependants, cancels or skips those it dooms, moves
-- those left waiting on nothing from dj_held_jobs into delayed_jobs, and updates the
-- workflow's counts; a failed step retried is pending again). On MySQL a trigger cannot
-- write a table that the statement firing it uses (error 1442), and releasing a step is an
-- insert into delayed_jobs made while a DELETE or UPDATE of delayed_jobs finishes another.
-- MySQL triggers are also per row only, with no WHEN and no UPDATE OF, so any trigger on
-- delayed_jobs would run for every row of every claim. So on MySQL the bookkeeping is the
-- procedures at the end of this file, which dj CALLs in the same transaction as the
-- completion, failure, cancel, delete or retry that finishes the step (on the worker's own
-- connection, or on the caller's for a transactional job), each taking the workflow's
-- dj_workflows row first (FOR UPDATE), as the PostgreSQL triggers do.

CREATE TABLE IF NOT EXISTS dj_workflows (
    id          BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name        TEXT        NOT NULL,
    kind        VARCHAR(8)  NOT NULL DEFAULT 'workflow' CHECK (kind IN ('workflow', 'batch')),
    state       VARCHAR(9)  NOT NULL DEFAULT 'running'
                            CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    steps       INT         NOT NULL,
    pending     INT         NOT NULL,
    failed      INT         NOT NULL DEFAULT 0,
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    finished_at DATETIME(6),
    -- Finished workflows for the prune (finished_at < cutoff: a range, the NULLs of running
    -- ones never in it; the other backends' index is partial, WHERE finished_at IS NOT NULL).
    INDEX dj_workflows_finished (finished_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- state 'cancelling' is SQLite's, a step's state only inside its bookkeeping trigger; allowed
-- here so that the three schemas accept the same states (the procedures never write it).
CREATE TABLE IF NOT EXISTS dj_workflow_steps (
    job_id       BIGINT       NOT NULL PRIMARY KEY,
    workflow_id  BIGINT       NOT NULL,
    step         VARCHAR(255) NOT NULL,
    state        VARCHAR(10)  NOT NULL
                              CHECK (state IN ('waiting', 'ready', 'succeeded', 'failed',
                                               'cancelled', 'skipped', 'cancelling')),
    runs         VARCHAR(9)   NOT NULL DEFAULT 'succeeded'
                              CHECK (runs IN ('succeeded', 'finished', 'failed')),
    waiting_on   INT          NOT NULL DEFAULT 0,
    failed_deps  INT          NOT NULL DEFAULT 0,
    cancelled_by BIGINT,
    finished_at  DATETIME(6),
    UNIQUE KEY dj_workflow_steps_step (workflow_id, step),
    INDEX dj_workflow_steps_state (workflow_id, state),
    CONSTRAINT dj_workflow_steps_workflow FOREIGN KEY (workflow_id)
        REFERENCES dj_workflows (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Step job_id runs after step depends_on.
CREATE TABLE IF NOT EXISTS dj_workflow_edges (
    depends_on BIGINT NOT NULL,
    job_id     BIGINT NOT NULL,
    PRIMARY KEY (depends_on, job_id),
    INDEX dj_workflow_edges_job (job_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- Held steps: delayed_jobs' columns with their types, in its order, so that a row moves with
-- INSERT .. SELECT *. A migration that adds a column to delayed_jobs adds it here too (the
-- conformance suite compares the two). Written out rather than CREATE TABLE .. LIKE, which
-- would copy AUTO_INCREMENT and every index: a held row keeps the id it was given in
-- delayed_jobs, and is only ever looked up by it.
--
-- Ids, as on the other backends: a step is inserted into delayed_jobs by dj's one insert, so
-- its id comes from delayed_jobs' AUTO_INCREMENT; the steps that must wait are then moved
-- here (INSERT INTO dj_held_jobs SELECT * FROM delayed_jobs WHERE id IN (..), then DELETE
-- FROM delayed_jobs WHERE id IN (..)), in the same transaction, before any names its
-- workflow (there so that the delete trigger skips them; here that delete finishes no step
-- either). Their release moves them back with those ids, below the counter, which InnoDB
-- accepts and which leaves the counter where it is. No second sequence is needed, because
-- the counter never goes back (0001): a restart, TRUNCATE or ALTER TABLE .. AUTO_INCREMENT
-- that set it at or below a held id would make that step's release a duplicate key.
CREATE TABLE IF NOT EXISTS dj_held_jobs (
    id                BIGINT       NOT NULL PRIMARY KEY,
    priority          INT          NOT NULL DEFAULT 0,
    attempts          INT          NOT NULL DEFAULT 0,
    handler           LONGTEXT     NOT NULL,
    last_error        LONGTEXT,
    run_at            DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    locked_at         DATETIME(6),
    failed_at         DATETIME(6),
    locked_by         VARCHAR(512),
    queue             VARCHAR(255),
    created_at        DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at        DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    name              VARCHAR(255) NOT NULL,
    max_run_time      INT,
    started_at        DATETIME(6),
    crashes           INT          NOT NULL DEFAULT 0,
    snoozes           INT          NOT NULL DEFAULT 0,
    unique_key        VARCHAR(512),
    unique_running    TINYINT(1)   NOT NULL DEFAULT 0,
    concurrency_key   VARCHAR(512),
    concurrency_limit INT,
    rate_limit        INT,
    rate_period_ms    INT,
    workflow_id       BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- The steps an operator's delete is removing, written in the delete's own transaction just
-- before it and removed just after, so that their rows count as not succeeded.
CREATE TABLE IF NOT EXISTS dj_workflow_deletes (
    job_id BIGINT NOT NULL PRIMARY KEY
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

-- SQLite's dj_workflow_events (the queue its triggers work through) is not made: the caller
-- of the procedures knows which steps it finishes. Finished workflows older than the workers'
-- result retention are pruned by the elected maintenance worker with their steps (by the
-- foreign key), edges and held rows.

-- The workflow a step belongs to (NULL: none), and a workflow's rows (`jobs --workflow`, its
-- retry): NULL for other rows, which the index holds too (the others' is partial). A claim
-- does not change it. One statement, last (see 0001).
ALTER TABLE delayed_jobs
    ADD COLUMN workflow_id BIGINT,
    ADD INDEX delayed_jobs_workflow (workflow_id);

-- dj: the workflow routines.
-- (`migrate` runs the rest of this file again where these procedures are missing: a database
-- migrated before they were added to this migration.)
--
-- The step bookkeeping, as procedures that dj's Rust code CALLs in the transaction that
-- finishes a step (every driver's: the worker's own connection, and the caller's mysql or
-- sqlx transaction of a transactional job), so that it is written once, here, as the other
-- backends' is in their triggers. Each takes the step's workflow row first (FOR UPDATE): one
-- workflow's changes, one transaction at a time. Their working sets are temporary tables of
-- the session (emptied before each use), since a MySQL statement cannot update a table it
-- also reads in a subquery (error 1093). Single quotes only, no DELIMITER (see 0010).
DROP PROCEDURE IF EXISTS dj_workflow_release;
DROP PROCEDURE IF EXISTS dj_workflow_finish;
DROP PROCEDURE IF EXISTS dj_workflow_step_retried;
DROP PROCEDURE IF EXISTS dj_workflow_restore;

-- The waiting steps in dj_wf_counted (of one workflow, whose row the caller holds) with
-- nothing left to wait on: a step that runs only after a failure, and saw none, is skipped;
-- the others move from dj_held_jobs into delayed_jobs, ready now (or at their own later
-- run_at), and idle workers are woken (a held row keeps its id, below the AUTO_INCREMENT
-- counter they watch). p_skipped: how many were skipped.
CREATE PROCEDURE dj_workflow_release(OUT p_skipped INT)
MODIFIES SQL DATA
SQL SECURITY INVOKER
BEGIN
    DECLARE v_now DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
    CREATE TEMPORARY TABLE IF NOT EXISTS dj_wf_released (id BIGINT NOT NULL PRIMARY KEY);
    DELETE FROM dj_wf_released;
    UPDATE dj_workflow_steps s JOIN dj_wf_counted c ON c.id = s.job_id
    SET s.state = 'skipped', s.finished_at = v_now
    WHERE s.state = 'waiting' AND s.waiting_on <= 0 AND s.runs = 'failed'
      AND s.failed_deps = 0;
    SET p_skipped = ROW_COUNT();
    INSERT INTO dj_wf_released (id)
    SELECT s.job_id FROM dj_workflow_steps s JOIN dj_wf_counted c ON c.id = s.job_id
    WHERE s.state = 'waiting' AND s.waiting_on <= 0;
    IF ROW_COUNT() > 0 THEN
        UPDATE dj_workflow_steps s JOIN dj_wf_released r ON r.id = s.job_id
        SET s.state = 'ready';
        UPDATE dj_held_jobs h JOIN dj_wf_released r ON r.id = h.id
        SET h.run_at = GREATEST(h.run_at, v_now), h.updated_at = v_now;
        INSERT INTO delayed_jobs
        SELECT h.* FROM dj_held_jobs h JOIN dj_wf_released r ON r.id = h.id;
        DELETE h FROM dj_held_jobs h JOIN dj_wf_released r ON r.id = h.id;
        UPDATE dj_wakeups SET n = n + 1;
    END IF;
END;

-- Step p_job finished: succeeded (p_ok) or not (failed for good, cancelled or deleted). A
-- step that is not ready (not a step, or already counted) is left as it is. Its dependants
-- count it; those with nothing left to wait on are released. On a failure, the waiting steps
-- that depend on it (directly or through other waiting steps) are cancelled, except those
-- that run anyway or only after a failure, which count it as finished (and failed).
CREATE PROCEDURE dj_workflow_finish(IN p_job BIGINT, IN p_ok BOOLEAN)
MODIFIES SQL DATA
SQL SECURITY INVOKER
finish: BEGIN
    DECLARE v_now DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
    DECLARE v_workflow BIGINT;
    DECLARE v_held BIGINT;
    DECLARE v_doomed INT DEFAULT 0;
    DECLARE v_skipped INT DEFAULT 0;
    DECLARE v_finished INT;
    DECLARE v_failures INT;
    SET v_workflow = (SELECT workflow_id FROM dj_workflow_steps WHERE job_id = p_job);
    IF v_workflow IS NULL THEN
        LEAVE finish;
    END IF;
    SELECT id INTO v_held FROM dj_workflows WHERE id = v_workflow FOR UPDATE;
    UPDATE dj_workflow_steps
    SET state = IF(p_ok, 'succeeded', 'failed'), finished_at = v_now
    WHERE job_id = p_job AND state = 'ready';
    IF ROW_COUNT() = 0 THEN
        LEAVE finish;
    END IF;
    CREATE TEMPORARY TABLE IF NOT EXISTS dj_wf_doomed (id BIGINT NOT NULL PRIMARY KEY);
    CREATE TEMPORARY TABLE IF NOT EXISTS dj_wf_counted (
        id BIGINT NOT NULL PRIMARY KEY, n INT NOT NULL
    );
    DELETE FROM dj_wf_doomed;
    DELETE FROM dj_wf_counted;
    IF NOT p_ok THEN
        INSERT INTO dj_wf_doomed (id)
        WITH RECURSIVE reached (id) AS (
            SELECT e.job_id FROM dj_workflow_edges e
            JOIN dj_workflow_steps s ON s.job_id = e.job_id
            WHERE e.depends_on = p_job AND s.state = 'waiting' AND s.runs = 'succeeded'
            UNION
            SELECT e.job_id FROM reached r
            JOIN dj_workflow_edges e ON e.depends_on = r.id
            JOIN dj_workflow_steps s ON s.job_id = e.job_id
            WHERE s.state = 'waiting' AND s.runs = 'succeeded'
        )
        SELECT id FROM reached;
        UPDATE dj_workflow_steps s JOIN dj_wf_doomed d ON d.id = s.job_id
        SET s.state = 'cancelled', s.cancelled_by = p_job, s.finished_at = v_now;
        SET v_doomed = ROW_COUNT();
    END IF;
    -- The dependants that count these as finished: all of a success's; of a failure's and
    -- of the steps it cancelled, those that run anyway or only after a failure.
    INSERT INTO dj_wf_counted (id, n)
    SELECT f.job_id, count(*) FROM (
        SELECT job_id FROM dj_workflow_edges WHERE depends_on = p_job
        UNION ALL
        SELECT e.job_id FROM dj_wf_doomed d JOIN dj_workflow_edges e ON e.depends_on = d.id
    ) AS f
    GROUP BY f.job_id;
    UPDATE dj_workflow_steps s JOIN dj_wf_counted c ON c.id = s.job_id
    SET s.waiting_on = s.waiting_on - IF(p_ok OR s.runs <> 'succeeded', c.n, 0),
        s.failed_deps = s.failed_deps + IF(p_ok, 0, c.n)
    WHERE s.state = 'waiting';
    CALL dj_workflow_release(v_skipped);
    SET v_finished = 1 + v_doomed + v_skipped;
    SET v_failures = IF(p_ok, 0, 1) + v_doomed;
    -- state and finished_at first: MySQL's assignments see the ones before them.
    UPDATE dj_workflows
    SET state = CASE
            WHEN state <> 'running' OR pending - v_finished > 0 THEN state
            WHEN failed + v_failures = 0 THEN 'succeeded'
            ELSE 'failed' END,
        finished_at = IF(pending - v_finished = 0, v_now, NULL),
        pending = pending - v_finished,
        failed = failed + v_failures
    WHERE id = v_workflow;
END;

-- A failed step made ready again (`retry`): it is pending once more. The steps its failure
-- cancelled stay cancelled.
CREATE PROCEDURE dj_workflow_step_retried(IN p_job BIGINT)
MODIFIES SQL DATA
SQL SECURITY INVOKER
retried: BEGIN
    DECLARE v_workflow BIGINT;
    DECLARE v_held BIGINT;
    SET v_workflow = (SELECT workflow_id FROM dj_workflow_steps WHERE job_id = p_job);
    IF v_workflow IS NULL THEN
        LEAVE retried;
    END IF;
    SELECT id INTO v_held FROM dj_workflows WHERE id = v_workflow FOR UPDATE;
    UPDATE dj_workflow_steps SET state = 'ready', finished_at = NULL
    WHERE job_id = p_job AND state = 'failed';
    IF ROW_COUNT() > 0 THEN
        UPDATE dj_workflows
        SET pending = pending + 1, failed = failed - 1, finished_at = NULL,
            state = IF(state = 'cancelled', state, 'running')
        WHERE id = v_workflow;
    END IF;
END;

-- A workflow's retry (its row held by the caller) puts its cancelled steps that are still
-- held back to waiting, each on its dependencies that have not succeeded (the failed ones
-- are retried next, in the same transaction), and releases those waiting on nothing (steps
-- cancelled with the workflow). p_restored: how many were put back.
CREATE PROCEDURE dj_workflow_restore(IN p_workflow BIGINT, OUT p_restored INT)
MODIFIES SQL DATA
SQL SECURITY INVOKER
BEGIN
    DECLARE v_skipped INT DEFAULT 0;
    CREATE TEMPORARY TABLE IF NOT EXISTS dj_wf_counted (
        id BIGINT NOT NULL PRIMARY KEY, n INT NOT NULL
    );
    DELETE FROM dj_wf_counted;
    INSERT INTO dj_wf_counted (id, n)
    SELECT s.job_id, (SELECT count(*) FROM dj_workflow_edges e
                      JOIN dj_workflow_steps d ON d.job_id = e.depends_on
                      WHERE e.job_id = s.job_id AND d.state <> 'succeeded')
    FROM dj_workflow_steps s JOIN dj_held_jobs h ON h.id = s.job_id
    WHERE s.workflow_id = p_workflow AND s.state = 'cancelled';
    SET p_restored = ROW_COUNT();
    UPDATE dj_workflows SET state = 'running', finished_at = NULL,
        pending = pending + p_restored, failed = failed - p_restored
    WHERE id = p_workflow;
    UPDATE dj_workflow_steps s JOIN dj_wf_counted c ON c.id = s.job_id
    SET s.state = 'waiting', s.cancelled_by = NULL, s.finished_at = NULL, s.failed_deps = 0,
        s.waiting_on = c.n;
    CALL dj_workflow_release(v_skipped);
    UPDATE dj_workflows SET pending = pending - v_skipped WHERE id = p_workflow;
END;
