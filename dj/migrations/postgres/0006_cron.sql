-- dj 0006: recurring jobs (`#[job(cron = ..)]`, `Db::add_schedule`).
--
-- One row per schedule. A worker fires a schedule whose next_fire_at has come by moving
-- next_fire_at on with a compare-and-set (`WHERE name = $1 AND next_fire_at = <what it
-- read>`) and inserting the job in the same transaction: each fire time is enqueued by
-- exactly one worker, however many there are, and a worker that dies mid-way has done
-- neither. Schedules from code (from_code) are upserted by every worker at start; the ones
-- added at run time carry their own handler (the job's arguments).
CREATE TABLE IF NOT EXISTS dj_cron (
    name          text        PRIMARY KEY,
    expression    text        NOT NULL,
    tz            text        NOT NULL DEFAULT 'UTC',
    missed        text        NOT NULL DEFAULT 'once' CHECK (missed IN ('once', 'skip')),
    job_name      text        NOT NULL,
    handler       text        NOT NULL,
    queue         text,
    priority      integer     NOT NULL DEFAULT 0,
    from_code     boolean     NOT NULL DEFAULT false,
    last_fire_at  timestamptz,
    next_fire_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The look for due schedules is a maintenance task like rescue and prune: one worker at a
-- time makes it, about once a second (the compare-and-set above is what makes a fire time
-- enqueue once; the election only spares the database a query per worker per second).
INSERT INTO dj_maintenance (task) VALUES ('cron') ON CONFLICT DO NOTHING;
