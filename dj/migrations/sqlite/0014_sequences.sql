-- dj 0014: sequences (`Delayed::sequence`). A sequence is a concurrency key whose
-- concurrency_limit is 0 (a limit no plain key may have): its jobs run one at a time in id
-- order, each waiting while an earlier one of its key is still here and has not failed for
-- good. The limited claim looks for such an earlier row for each candidate; this index
-- answers it from the key and the id.
CREATE INDEX IF NOT EXISTS delayed_jobs_sequence
    ON delayed_jobs (concurrency_key, id)
    WHERE concurrency_limit = 0 AND failed_at IS NULL;
