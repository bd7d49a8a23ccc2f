-- dj 0016: attempt history. Each failed attempt of a job (an error, a crash its worker died
-- in, an overrun) leaves a row here, written with the attempt's outcome: its number, the
-- worker, when it started and ended, and its error (at most 4 KiB; `last_error` on the job
-- keeps the whole of the latest, as delayed_job has it). A job keeps its latest 25. Rows
-- outlive their job by the workers' `result_retention`, then the elected maintenance worker
-- deletes them with the results.
CREATE TABLE IF NOT EXISTS dj_attempts (
    job_id      bigint      NOT NULL,
    attempt     integer     NOT NULL,
    worker      text        NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    error       text        NOT NULL,
    PRIMARY KEY (job_id, attempt)
);

-- The maintenance worker's prune of the attempts of jobs gone longer than the retention.
CREATE INDEX IF NOT EXISTS dj_attempts_finished ON dj_attempts (finished_at);
