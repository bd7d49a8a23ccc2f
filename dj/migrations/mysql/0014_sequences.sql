-- dj 0014: sequences (`Delayed::sequence`). A sequence is a concurrency key whose
-- concurrency_limit is 0 (a limit no plain key may have): its jobs run one at a time in id
-- order, each waiting while an earlier one of its key is still here and has not failed for
-- good. The limited claim looks for such an earlier row for each candidate:
--   concurrency_key = ? AND concurrency_limit = 0 AND failed_at IS NULL AND id < ?
-- The other backends' index is (concurrency_key, id) WHERE concurrency_limit = 0 AND
-- failed_at IS NULL; MySQL has no partial index, so the conditions lead the key instead:
-- three equalities and a range on id. On 100,000 rows EXPLAIN shows a range on all four
-- columns, key_len 2073, "Using index", and the EXISTS reads one entry. No column a claim
-- writes is in it.
ALTER TABLE delayed_jobs
    ADD INDEX delayed_jobs_sequence (concurrency_key, concurrency_limit, failed_at, id);
