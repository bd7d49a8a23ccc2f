-- dj 0020: workflows (see the PostgreSQL schema for what each table and column means). SQLite
-- triggers have no variables, so a finished step is written to dj_workflow_events, whose
-- trigger does the work in statements that each read what the one before wrote, and then
-- deletes the event; 'cancelling' and 'releasing' are steps' states only inside that
-- trigger. One writer at a time: no two steps finish at once.
ALTER TABLE delayed_jobs ADD COLUMN workflow_id INTEGER;

CREATE TABLE IF NOT EXISTS dj_workflows (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
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
                                          'cancelling', 'releasing')),
    waiting_on   INTEGER NOT NULL DEFAULT 0,
    run_anyway   INTEGER NOT NULL DEFAULT 0,
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

-- A step that was ready (its row in delayed_jobs) finished: succeeded (NEW.ok) or not.
CREATE TRIGGER IF NOT EXISTS dj_workflow_event AFTER INSERT ON dj_workflow_events
BEGIN
    UPDATE dj_workflow_steps
    SET state = CASE WHEN NEW.ok THEN 'succeeded' ELSE 'failed' END,
        finished_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
    WHERE job_id = NEW.job_id;

    -- A failure cancels the waiting steps that depend on it, directly or through other
    -- waiting steps, except those that run anyway.
    UPDATE dj_workflow_steps
    SET state = 'cancelling', cancelled_by = NEW.job_id,
        finished_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
    WHERE NOT NEW.ok AND job_id IN (
        WITH RECURSIVE reached (id) AS (
            SELECT e.job_id FROM dj_workflow_edges e
            JOIN dj_workflow_steps s ON s.job_id = e.job_id
            WHERE e.depends_on = NEW.job_id AND s.state = 'waiting' AND NOT s.run_anyway
            UNION
            SELECT e.job_id FROM reached r
            JOIN dj_workflow_edges e ON e.depends_on = r.id
            JOIN dj_workflow_steps s ON s.job_id = e.job_id
            WHERE s.state = 'waiting' AND NOT s.run_anyway
        )
        SELECT id FROM reached);

    -- The dependants that count these as finished: all of a success's; only those that run
    -- anyway of a failure's and of the steps it cancelled.
    UPDATE dj_workflow_steps
    SET waiting_on = waiting_on - (
        SELECT count(*) FROM dj_workflow_edges e
        WHERE e.job_id = dj_workflow_steps.job_id
          AND (e.depends_on = NEW.job_id OR e.depends_on IN (
              SELECT c.job_id FROM dj_workflow_steps c
              WHERE c.workflow_id = NEW.workflow_id AND c.state = 'cancelling')))
    WHERE state = 'waiting' AND (NEW.ok OR run_anyway) AND job_id IN (
        SELECT e.job_id FROM dj_workflow_edges e
        WHERE e.depends_on = NEW.job_id OR e.depends_on IN (
            SELECT c.job_id FROM dj_workflow_steps c
            WHERE c.workflow_id = NEW.workflow_id AND c.state = 'cancelling'));

    -- Release the steps with nothing left to wait on: ready now (or at their own later run_at).
    UPDATE dj_workflow_steps SET state = 'releasing'
    WHERE workflow_id = NEW.workflow_id AND state = 'waiting' AND waiting_on <= 0;
    UPDATE dj_held_jobs
    SET run_at = max(run_at, strftime('%Y-%m-%d %H:%M:%f', 'now')),
        updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
    WHERE id IN (SELECT job_id FROM dj_workflow_steps
                 WHERE workflow_id = NEW.workflow_id AND state = 'releasing');
    INSERT INTO delayed_jobs SELECT * FROM dj_held_jobs
    WHERE id IN (SELECT job_id FROM dj_workflow_steps
                 WHERE workflow_id = NEW.workflow_id AND state = 'releasing');
    DELETE FROM dj_held_jobs
    WHERE id IN (SELECT job_id FROM dj_workflow_steps
                 WHERE workflow_id = NEW.workflow_id AND state = 'releasing');
    -- Explicit ids do not move delayed_jobs' AUTOINCREMENT counter, which idle workers watch.
    UPDATE dj_wakeups SET n = n + 1
    WHERE EXISTS (SELECT 1 FROM dj_workflow_steps
                  WHERE workflow_id = NEW.workflow_id AND state = 'releasing');
    UPDATE dj_workflow_steps SET state = 'ready'
    WHERE workflow_id = NEW.workflow_id AND state = 'releasing';

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
