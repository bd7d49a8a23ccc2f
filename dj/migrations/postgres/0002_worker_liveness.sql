-- dj 0002: worker liveness. Workers register here and heartbeat every few seconds; one whose
-- heartbeat is older than the heartbeat timeout (30 s by default) is dead on any host: its
-- started jobs are charged one attempt and its unstarted claims are released untouched.
CREATE TABLE IF NOT EXISTS dj_workers (
    name         text        PRIMARY KEY,           -- as written to delayed_jobs.locked_by
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    queues       text,                              -- comma-separated; NULL: every queue
    version      text        NOT NULL,              -- dj's version
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    running      integer     NOT NULL DEFAULT 0     -- jobs running at the last heartbeat
);

-- Periodic maintenance (rescuing dead workers' jobs, and later pruning and cron) is done by one
-- worker at a time: each pass is won by the one conditional UPDATE of its task's row that finds
-- ran_at old enough. A lease per pass, not a held lock, so a frozen worker never keeps the role.
CREATE TABLE IF NOT EXISTS dj_maintenance (
    task    text        PRIMARY KEY,
    ran_at  timestamptz NOT NULL DEFAULT '-infinity',
    ran_by  text
);
INSERT INTO dj_maintenance (task) VALUES ('rescue'), ('orphans') ON CONFLICT DO NOTHING;

-- started_at: when the worker holding the lock recorded that the job started (NULL: no start
-- recorded during this lock; the claim clears it). Only a job with a recorded start is charged
-- an attempt when its worker dies; the others are released untouched.
-- crashes: how often a worker died holding the job before recording its start. A job with
-- crashes > 0 has its start recorded before it runs, so a poison pill runs out of attempts.
-- Neither column is indexed: claims stay HOT updates.
ALTER TABLE delayed_jobs
    ADD COLUMN IF NOT EXISTS started_at timestamptz,
    ADD COLUMN IF NOT EXISTS crashes integer NOT NULL DEFAULT 0;
