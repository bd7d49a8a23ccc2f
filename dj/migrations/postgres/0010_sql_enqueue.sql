-- dj 0010: enqueue from SQL, for triggers, psql sessions and programs in other languages.
--
--   SELECT dj_enqueue('send_email', '{"to": "a@example.com"}', queue => 'mail');   -- the id
--   SELECT dj_enqueue_many('[{"job": "send_email", "args": {"to": "a@example.com"}}]');
--   INSERT INTO dj_enqueue (job, args, queue) VALUES ('send_email', '{"to": "a@example.com"}', 'mail')
--       RETURNING id;
--
-- The rows are the rows dj's own enqueue makes (the handler {"job": NAME, "args": ARGS}), checked
-- by the same rules: a job name, a handler of at most 1 MiB, a queue name of 1 to 255 bytes
-- without control characters or commas and without spaces at either end, a max_run_time of at
-- least one second. The insert trigger of 0001 wakes idle workers. The job's own #[job(..)]
-- defaults (queue, priority, max_run_time) are the Rust side's: from SQL, pass them.

-- The handler text of one job, after checking every value as dj's enqueue does; raises
-- (SQLSTATE 22023, invalid_parameter_value) naming the value and the rule otherwise.
CREATE OR REPLACE FUNCTION dj_handler(job text, args jsonb, queue text, max_run_time integer)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    handler text;
BEGIN
    IF job IS NULL OR job = '' THEN
        RAISE EXCEPTION 'dj_enqueue: a job needs its name (the job''s #[job(name)] or type name)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    handler := jsonb_build_object('job', job, 'args', coalesce(args, 'null'::jsonb))::text;
    IF octet_length(handler) > 1048576 THEN
        RAISE EXCEPTION 'dj_enqueue: job % is % bytes stored; at most 1048576 (1 MiB): store the data elsewhere and pass its key',
            job, octet_length(handler)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF queue IS NOT NULL AND (
        queue = ''
        OR octet_length(queue) > 255
        OR queue ~ '[\u0001-\u001f\u007f-\u009f]'
        OR position(',' IN queue) > 0
        OR queue ~ '^[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]'
        OR queue ~ '[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$'
    ) THEN
        RAISE EXCEPTION 'dj_enqueue: invalid queue name %: use 1 to 255 bytes of text without control characters or commas, and no spaces at either end',
            to_jsonb(queue)::text
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_run_time IS NOT NULL AND max_run_time < 1 THEN
        RAISE EXCEPTION 'dj_enqueue: max_run_time is % s; give at least 1 second, or NULL for the worker''s',
            max_run_time
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN handler;
END;
$$;

-- One job; returns its id. run_at NULL: now, by the database's clock.
CREATE OR REPLACE FUNCTION dj_enqueue(
    job text,
    args jsonb DEFAULT '{}',
    queue text DEFAULT NULL,
    priority integer DEFAULT 0,
    run_at timestamptz DEFAULT NULL,
    max_run_time integer DEFAULT NULL
) RETURNS bigint LANGUAGE sql VOLATILE AS $$
    INSERT INTO delayed_jobs (name, handler, priority, queue, run_at, max_run_time)
    VALUES ($1, dj_handler($1, $2, $3, $6), coalesce($4, 0), $3, coalesce($5, now()), $6)
    RETURNING id
$$;

-- Many jobs, all or none, in one statement: a JSON array of objects with the keys of
-- dj_enqueue ({"job": .., "args": .., "queue": .., "priority": .., "run_at": ..,
-- "max_run_time": ..}); returns their ids in the array's order.
CREATE OR REPLACE FUNCTION dj_enqueue_many(jobs jsonb) RETURNS SETOF bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    unknown text;
BEGIN
    IF jsonb_typeof(jobs) IS DISTINCT FROM 'array'
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(jobs) AS e(j) WHERE jsonb_typeof(e.j) <> 'object')
    THEN
        RAISE EXCEPTION 'dj_enqueue_many: pass a JSON array of objects, [{"job": NAME, "args": {..}}, ..]; got %',
            left(coalesce(jobs::text, 'NULL'), 200)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT k INTO unknown
    FROM jsonb_array_elements(jobs) AS e(j), jsonb_object_keys(e.j) AS k
    WHERE k NOT IN ('job', 'args', 'queue', 'priority', 'run_at', 'max_run_time')
    LIMIT 1;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'dj_enqueue_many: unknown key "%"; a job takes job, args, queue, priority, run_at and max_run_time',
            unknown
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH given AS (
        SELECT t.*, o.n
        FROM jsonb_array_elements(jobs) WITH ORDINALITY AS o(j, n)
        CROSS JOIN LATERAL jsonb_to_record(o.j)
            AS t(job text, args jsonb, queue text, priority integer, run_at timestamptz,
                 max_run_time integer)
    ),
    inserted AS (
        INSERT INTO delayed_jobs (name, handler, priority, queue, run_at, max_run_time)
        SELECT g.job, dj_handler(g.job, coalesce(g.args, '{}'), g.queue, g.max_run_time),
               coalesce(g.priority, 0), g.queue, coalesce(g.run_at, now()), g.max_run_time
        FROM given AS g
        ORDER BY g.n
        RETURNING id
    )
    SELECT id FROM inserted ORDER BY id;
END;
$$;

-- The same as a table to insert into, on both backends: INSERT INTO dj_enqueue (job, args,
-- queue, priority, run_at, max_run_time) VALUES (..), (..) RETURNING id. It reads as empty.
CREATE OR REPLACE VIEW dj_enqueue AS
SELECT NULL::bigint AS id, NULL::text AS job, NULL::jsonb AS args, NULL::text AS queue,
       NULL::integer AS priority, NULL::timestamptz AS run_at, NULL::integer AS max_run_time
WHERE false;

CREATE OR REPLACE FUNCTION dj_enqueue_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.args := coalesce(NEW.args, '{}');
    NEW.priority := coalesce(NEW.priority, 0);
    NEW.id := dj_enqueue(NEW.job, NEW.args, NEW.queue, NEW.priority, NEW.run_at,
                         NEW.max_run_time);
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS dj_enqueue ON dj_enqueue;
CREATE TRIGGER dj_enqueue INSTEAD OF INSERT ON dj_enqueue
    FOR EACH ROW EXECUTE FUNCTION dj_enqueue_row();
