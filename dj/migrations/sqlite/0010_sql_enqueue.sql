-- dj 0010: enqueue from SQL, for triggers, the sqlite3 shell and programs in other languages.
-- SQLite has no stored functions, so the form is a view to insert into (PostgreSQL has the same
-- view, and functions besides):
--
--   INSERT INTO dj_enqueue (job, args, queue) VALUES ('send_email', '{"to": "a@example.com"}', 'mail');
--
-- Several rows in one INSERT are all or none. The rows are the rows dj's own enqueue makes
-- (the handler {"job":NAME,"args":ARGS}), checked by the same rules: a job name, JSON args, a
-- handler of at most 1 MiB, a queue name of 1 to 255 bytes without control characters or
-- commas and without spaces at either end, an integer priority, run_at a time SQLite reads
-- (UTC 'YYYY-MM-DD HH:MM:SS', or with 'T' and an offset), a max_run_time of at least one
-- second. The insert moves delayed_jobs' AUTOINCREMENT counter, which idle workers watch.
CREATE VIEW IF NOT EXISTS dj_enqueue (job, args, queue, priority, run_at, max_run_time) AS
    SELECT NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;

CREATE TRIGGER IF NOT EXISTS dj_enqueue INSTEAD OF INSERT ON dj_enqueue
BEGIN
    SELECT RAISE(ABORT, 'dj_enqueue: a job needs its name (the job''s #[job(name)] or type name)')
    WHERE NEW.job IS NULL OR typeof(NEW.job) <> 'text' OR NEW.job = '';

    SELECT RAISE(ABORT, 'dj_enqueue: args must be JSON text, such as ''{"id": 42}''')
    WHERE NEW.args IS NOT NULL AND (typeof(NEW.args) <> 'text' OR json_valid(NEW.args) = 0);

    SELECT RAISE(ABORT, 'dj_enqueue: the job is more than 1048576 bytes stored (1 MiB): store the data elsewhere and pass its key')
    WHERE length(CAST(json_object('job', NEW.job, 'args', json(coalesce(NEW.args, '{}'))) AS BLOB))
          > 1048576;

    SELECT RAISE(ABORT, 'dj_enqueue: invalid queue name: use 1 to 255 bytes of text without control characters or commas, and no spaces at either end')
    WHERE NEW.queue IS NOT NULL AND (
        typeof(NEW.queue) <> 'text'
        OR NEW.queue = ''
        OR length(CAST(NEW.queue AS BLOB)) > 255
        OR NEW.queue GLOB ('*[' || char(1) || '-' || char(31) || char(127) || '-' || char(159) || ']*')
        OR instr(NEW.queue, ',') > 0
        OR NEW.queue <> trim(NEW.queue, char(32, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197, 8198,
                                              8199, 8200, 8201, 8202, 8232, 8233, 8239, 8287, 12288))
    );

    SELECT RAISE(ABORT, 'dj_enqueue: priority must be an integer (lower runs first), or NULL for 0')
    WHERE NEW.priority IS NOT NULL AND typeof(NEW.priority) <> 'integer';

    SELECT RAISE(ABORT, 'dj_enqueue: run_at is not a time SQLite reads: write UTC ''YYYY-MM-DD HH:MM:SS'', or NULL for now')
    WHERE NEW.run_at IS NOT NULL AND strftime('%Y-%m-%d %H:%M:%f', NEW.run_at) IS NULL;

    SELECT RAISE(ABORT, 'dj_enqueue: max_run_time must be a whole number of seconds, at least 1, or NULL for the worker''s')
    WHERE NEW.max_run_time IS NOT NULL
      AND (typeof(NEW.max_run_time) <> 'integer' OR NEW.max_run_time < 1);

    INSERT INTO delayed_jobs
        (name, handler, priority, queue, run_at, max_run_time, created_at, updated_at)
    VALUES (
        NEW.job,
        json_object('job', NEW.job, 'args', json(coalesce(NEW.args, '{}'))),
        coalesce(NEW.priority, 0),
        NEW.queue,
        coalesce(strftime('%Y-%m-%d %H:%M:%f', NEW.run_at), strftime('%Y-%m-%d %H:%M:%f', 'now')),
        NEW.max_run_time,
        strftime('%Y-%m-%d %H:%M:%f', 'now'),
        strftime('%Y-%m-%d %H:%M:%f', 'now')
    );
END;
