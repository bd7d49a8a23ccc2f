-- dj 0020: workflows: jobs that run only after others have succeeded (a DAG), enqueued
-- together in one transaction (`dj::Workflow`). See the PostgreSQL schema for what each table
-- and column means.
--
-- Where MySQL differs: the tables and indexes only, no triggers. On the other backends
-- triggers on delayed_jobs do the step bookkeeping (a step's row deleted or failed for good
-- finishes the step, counts it for its dependants, cancels or skips those it dooms, moves
-- those left waiting on nothing from dj_held_jobs into delayed_jobs, and updates the
-- workflow's counts; a failed step retried is pending again). On MySQL a trigger cannot
-- write a table that the statement firing it uses (error 1442), and releasing a step is an
-- insert into delayed_jobs made while a DELETE or UPDATE of delayed_jobs finishes another.
-- MySQL triggers are also per row only, with no WHEN and no UPDATE OF, so any trigger on
-- delayed_jobs would run for every row of every claim. So on MySQL dj's Rust code does the
-- bookkeeping itself, in the same transaction as the completion, failure, cancel, delete or
-- retry that finishes the step, taking the workflow's dj_workflows row first (FOR UPDATE,
-- several workflows in id order), as the PostgreSQL triggers do.

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

-- state 'cancelling' is SQLite's, a step's state only inside its bookkeeping trigger;
-- allowed here too, for Rust bookkeeping that marks a failure's dependants in steps.
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

-- SQLite's dj_workflow_events (the queue its triggers work through) is not made: the Rust
-- bookkeeping knows which steps it finishes. Finished workflows older than the workers'
-- result retention are pruned by the elected maintenance worker with their steps (by the
-- foreign key), edges and held rows.

-- The workflow a step belongs to (NULL: none), and a workflow's rows (`jobs --workflow`, its
-- retry): NULL for other rows, which the index holds too (the others' is partial). A claim
-- does not change it. One statement, last (see 0001).
ALTER TABLE delayed_jobs
    ADD COLUMN workflow_id BIGINT,
    ADD INDEX delayed_jobs_workflow (workflow_id);
