-- dj 0020: workflows (see the PostgreSQL schema for what each table and column means). SQLite
-- triggers have no variables, so a finished step is written to dj_workflow_events, whose
-- trigger does the work in statements that each read what the one before wrote, and then
-- deletes the event; 'cancelling' is a step's state only inside that trigger. A step is
-- released by a trigger of its own, whenever it is left waiting on nothing. One writer at a
-- time: no two steps finish at once.
ALTER TABLE delayed_jobs ADD COLUMN workflow_id INTEGER;
CREATE INDEX IF NOT EXISTS delayed_jobs_workflow ON delayed_jobs (workflow_id)
    WHERE workflow_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS dj_workflows (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL DEFAULT 'workflow' CHECK (kind IN ('workflow', 'batch')),
    state       TEXT    NOT NULL DEFAULT 'running'
                        CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    steps       INTEGER NOT NULL,
    pending     INTEGER NOT NULL,
    failed      INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS dj_workflows_finished ON dj_workflows (finished_at)
    WHERE finished_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS dj_workflow_steps (
    job_id       INTEGER PRIMARY KEY,
    workflow_id  INTEGER NOT NULL REFERENCES dj_workflows (id) ON DELETE CASCADE,
    step         TEXT    NOT NULL,
    state        TEXT    NOT NULL
                         CHECK (state IN ('waiting', 'ready', 'succeeded', 'failed', 'cancelled',
                                          'skipped', 'cancelling')),
    runs         TEXT    NOT NULL DEFAULT 'succeeded'
                         CHECK (runs IN ('succeeded', 'finished', 'failed')),
    waiting_on   INTEGER NOT NULL DEFAULT 0,
    failed_deps  INTEGER NOT NULL DEFAULT 0,
    cancelled_by INTEGER,
    finished_at  TEXT,
    UNIQUE (workflow_id, step)
);
CREATE INDEX IF NOT EXISTS dj_workflow_steps_state ON dj_workflow_steps (workflow_id, state);

CREATE TABLE IF NOT EXISTS dj_workflow_edges (
    depends_on INTEGER NOT NULL,
    job_id     INTEGER NOT NULL,
    PRIMARY KEY (depends_on, job_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dj_workflow_edges_job ON dj_workflow_edges (job_id);

-- Held steps: delayed_jobs' columns in its order (a migration adding a column to
-- delayed_jobs adds it here too; the conformance suite compares the two).
CREATE TABLE IF NOT EXISTS dj_held_jobs AS SELECT * FROM delayed_jobs WHERE 0;
CREATE UNIQUE INDEX IF NOT EXISTS dj_held_jobs_id ON dj_held_jobs (id);

CREATE TABLE IF NOT EXISTS dj_workflow_deletes (
    job_id INTEGER PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS dj_workflow_events (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL,
    workflow_id INTEGER NOT NULL,
    ok          INTEGER NOT NULL
);

-- A waiting step with nothing left to wait on moves into delayed_jobs, ready now (or at its
-- own later run_at). Explicit ids do not move delayed_jobs' AUTOINCREMENT counter, which idle
-- workers watch, so the release moves dj_wakeups.
CREATE TRIGGER IF NOT EXISTS dj_workflow_release
AFTER UPDATE OF waiting_on, state ON dj_workflow_steps
WHEN NEW.state = 'waiting' AND NEW.waiting_on <= 0
     AND NOT (NEW.runs = 'failed' AND NEW.failed_deps = 0)
BEGIN
    UPDATE dj_held_jobs
    SET run_at = max(run_at, strftime('%Y-%m-%d %H:%M:%f', 'now')),
        updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
    WHERE id = NEW.job_id;
    INSERT INTO delayed_jobs SELECT * FROM dj_held_jobs WHERE id = NEW.job_id;
    DELETE FROM dj_held_jobs WHERE id = NEW.job_id;
    UPDATE dj_wakeups SET n = n + 1;
    UPDATE dj_workflow_steps SET state = 'ready' WHERE job_id = NEW.job_id;
END;

-- A step that runs only after a failure, left waiting on nothing with none failed, is skipped:
-- finished without running.
CREATE TRIGGER IF NOT EXISTS dj_workflow_skip
AFTER UPDATE OF waiting_on, state ON dj_workflow_steps
WHEN NEW.state = 'waiting' AND NEW.waiting_on <= 0 AND NEW.runs = 'failed'
     AND NEW.failed_deps = 0
BEGIN
    UPDATE dj_workflow_steps
    SET state = 'skipped', finished_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
    WHERE job_id = NEW.job_id;
    UPDATE dj_workflows
    SET pending = pending - 1,
        state = CASE WHEN state = 'running' AND pending = 1
                     THEN CASE WHEN failed = 0 THEN 'succeeded' ELSE 'failed' END
                     ELSE state END,
        finished_at = CASE WHEN pending = 1 THEN strftime('%Y-%m-%d %H:%M:%f', 'now')
                           ELSE finished_at END
    WHERE id = NEW.workflow_id;
END;

-- A step that was ready (its row in delayed_jobs) finished: succeeded (NEW.ok) or not.
CREATE TRIGGER IF NOT EXISTS dj_workflow_event AFTER INSERT ON dj_workflow_events
BEGIN
    UPDATE dj_workflow_steps
    SET state = CASE WHEN NEW.ok THEN 'succeeded' ELSE 'failed' END,
        finished_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
    WHERE job_id = NEW.job_id;

    -- A failure cancels the waiting steps that depend on it, directly or through other
    -- waiting steps, except those that run anyway or only after a failure.
    UPDATE dj_workflow_steps
    SET state = 'cancelling', cancelled_by = NEW.job_id,
        finished_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
    WHERE NOT NEW.ok AND job_id IN (
        WITH RECURSIVE reached (id) AS (
            SELECT e.job_id FROM dj_workflow_edges e
            JOIN dj_workflow_steps s ON s.job_id = e.job_id
            WHERE e.depends_on = NEW.job_id AND s.state = 'waiting' AND s.runs = 'succeeded'
            UNION
            SELECT e.job_id FROM reached r
            JOIN dj_workflow_edges e ON e.depends_on = r.id
            JOIN dj_workflow_steps s ON s.job_id = e.job_id
            WHERE s.state = 'waiting' AND s.runs = 'succeeded'
        )
        SELECT id FROM reached);

    -- The dependants that count these as finished: all of a success's; of a failure's and of
    -- the steps it cancelled, those that run anyway or only after a failure. Those left
    -- waiting on nothing are released (dj_workflow_release) or skipped (dj_workflow_skip).
    UPDATE dj_workflow_steps
    SET failed_deps = failed_deps + CASE WHEN NEW.ok THEN 0 ELSE (
            SELECT count(*) FROM dj_workflow_edges e
            WHERE e.job_id = dj_workflow_steps.job_id
              AND (e.depends_on = NEW.job_id OR e.depends_on IN (
                  SELECT c.job_id FROM dj_workflow_steps c
                  WHERE c.workflow_id = NEW.workflow_id AND c.state = 'cancelling'))) END,
        waiting_on = waiting_on - (
        SELECT count(*) FROM dj_workflow_edges e
        WHERE e.job_id = dj_workflow_steps.job_id
          AND (e.depends_on = NEW.job_id OR e.depends_on IN (
              SELECT c.job_id FROM dj_workflow_steps c
              WHERE c.workflow_id = NEW.workflow_id AND c.state = 'cancelling')))
    WHERE state = 'waiting' AND (NEW.ok OR runs <> 'succeeded') AND job_id IN (
        SELECT e.job_id FROM dj_workflow_edges e
        WHERE e.depends_on = NEW.job_id OR e.depends_on IN (
            SELECT c.job_id FROM dj_workflow_steps c
            WHERE c.workflow_id = NEW.workflow_id AND c.state = 'cancelling'));

    UPDATE dj_workflows
    SET pending = pending - 1 - (SELECT count(*) FROM dj_workflow_steps
                                 WHERE workflow_id = NEW.workflow_id AND state = 'cancelling'),
        failed = failed + (NOT NEW.ok) + (SELECT count(*) FROM dj_workflow_steps
                                          WHERE workflow_id = NEW.workflow_id AND state = 'cancelling'),
        state = CASE
            WHEN state <> 'running' OR pending - 1 - (
                SELECT count(*) FROM dj_workflow_steps
                WHERE workflow_id = NEW.workflow_id AND state = 'cancelling') > 0 THEN state
            WHEN failed + (NOT NEW.ok) = 0 THEN 'succeeded'
            ELSE 'failed' END,
        finished_at = CASE WHEN pending - 1 - (
                SELECT count(*) FROM dj_workflow_steps
                WHERE workflow_id = NEW.workflow_id AND state = 'cancelling') = 0
            THEN strftime('%Y-%m-%d %H:%M:%f', 'now') END
    WHERE id = NEW.workflow_id;
    UPDATE dj_workflow_steps SET state = 'cancelled'
    WHERE workflow_id = NEW.workflow_id AND state = 'cancelling';

    DELETE FROM dj_workflow_events WHERE id = NEW.id;
END;

-- A step's row deleted: by its worker after it succeeded, unless a failure under
-- destroy_failed_jobs (kept in dj_results just before) or an operator's delete (named in
-- dj_workflow_deletes first).
CREATE TRIGGER IF NOT EXISTS dj_workflow_deleted AFTER DELETE ON delayed_jobs
WHEN OLD.workflow_id IS NOT NULL AND OLD.failed_at IS NULL
BEGIN
    INSERT INTO dj_workflow_events (job_id, workflow_id, ok)
    SELECT OLD.id, OLD.workflow_id,
           NOT EXISTS (SELECT 1 FROM dj_results WHERE job_id = OLD.id AND state = 'failed')
           AND NOT EXISTS (SELECT 1 FROM dj_workflow_deletes WHERE job_id = OLD.id)
    WHERE EXISTS (SELECT 1 FROM dj_workflow_steps WHERE job_id = OLD.id AND state = 'ready');
END;

-- A step's row failed for good.
CREATE TRIGGER IF NOT EXISTS dj_workflow_failed AFTER UPDATE OF failed_at ON delayed_jobs
WHEN NEW.workflow_id IS NOT NULL AND OLD.failed_at IS NULL AND NEW.failed_at IS NOT NULL
BEGIN
    INSERT INTO dj_workflow_events (job_id, workflow_id, ok)
    SELECT NEW.id, NEW.workflow_id, 0
    WHERE EXISTS (SELECT 1 FROM dj_workflow_steps WHERE job_id = NEW.id AND state = 'ready');
END;

-- A failed step made ready again (`retry`): pending once more; what it cancelled stays so.
CREATE TRIGGER IF NOT EXISTS dj_workflow_retried AFTER UPDATE OF failed_at ON delayed_jobs
WHEN NEW.workflow_id IS NOT NULL AND OLD.failed_at IS NOT NULL AND NEW.failed_at IS NULL
BEGIN
    UPDATE dj_workflows
    SET pending = pending + 1, failed = failed - 1, finished_at = NULL,
        state = CASE WHEN state = 'cancelled' THEN state ELSE 'running' END
    WHERE id = NEW.workflow_id
      AND EXISTS (SELECT 1 FROM dj_workflow_steps WHERE job_id = NEW.id AND state = 'failed');
    UPDATE dj_workflow_steps SET state = 'ready', finished_at = NULL
    WHERE job_id = NEW.id AND state = 'failed';
END;
