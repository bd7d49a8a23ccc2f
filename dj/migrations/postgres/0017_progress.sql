-- dj 0017: progress. A running job reports how far it is (`Context::progress`: a fraction
-- and a short message); its worker writes the latest report of each of its jobs here at most
-- once a second, and deletes it when the job ends. The dashboard and `worker top` read it.
-- Rows whose job is gone (their worker died) are deleted by the elected maintenance worker.
CREATE TABLE IF NOT EXISTS dj_progress (
    job_id     bigint           PRIMARY KEY,
    fraction   double precision NOT NULL,
    message    text             NOT NULL,
    updated_at timestamptz      NOT NULL DEFAULT now()
);
