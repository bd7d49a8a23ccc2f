-- dj 0015: transactional completion (`Context::complete_in`). A job that writes to this
-- database completes its own row in the transaction that holds its writes, by calling
--   SELECT dj_complete(job_id, worker, result_json_or_null)
-- in it: the row is deleted (and a recorded result kept in dj_results) only if the worker
-- still holds the job and is still registered. Otherwise it raises SQLSTATE DJ001, which
-- aborts the caller's transaction: a worker declared dead, or a job released, cancelled or
-- claimed again elsewhere, cannot commit the job's effects. While the transaction is open it
-- holds the worker's registration (FOR KEY SHARE), so that the worker is not declared dead
-- between the check and the commit.
CREATE OR REPLACE FUNCTION dj_complete(p_job bigint, p_worker text, p_result text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    job_name text;
BEGIN
    PERFORM 1 FROM dj_workers WHERE name = p_worker FOR KEY SHARE;
    IF FOUND THEN
        DELETE FROM delayed_jobs WHERE id = p_job AND locked_by = p_worker
            RETURNING name INTO job_name;
    END IF;
    IF job_name IS NULL THEN
        RAISE EXCEPTION 'dj: job % is no longer held by worker %', p_job, p_worker
            USING ERRCODE = 'DJ001',
                  DETAIL = 'The worker was declared dead, or the job was released, cancelled or claimed again: this transaction must not commit.',
                  HINT = 'Return the error from perform so that the transaction rolls back; the job runs again elsewhere.';
    END IF;
    IF p_result IS NOT NULL THEN
        INSERT INTO dj_results AS r (job_id, name, state, value)
        VALUES (p_job, job_name, 'succeeded', p_result::jsonb)
        ON CONFLICT (job_id) DO UPDATE SET name = excluded.name, state = excluded.state,
            value = excluded.value, error = NULL, finished_at = excluded.finished_at;
        PERFORM pg_notify('dj_results', p_job::text);
    END IF;
END $$;
