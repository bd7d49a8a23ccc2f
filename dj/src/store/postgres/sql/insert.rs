//! The insert statements: one row by scalars, many rows by arrays (`unnest`), unique rows
//! by arrays with `ON CONFLICT` on the live-key index. Every driver sends these same texts.

/// One plain row, its values bound as scalars.
pub(crate) const INSERT_ONE: &str = "INSERT INTO delayed_jobs \
         (name, handler, priority, queue, run_at, max_run_time, concurrency_key, concurrency_limit, \
          rate_limit, rate_period_ms) \
     VALUES ($1, $2, $3, $4, coalesce(to_timestamp($5), now() + $6 * interval '1 second'), $7, $8, $9, \
             $10, $11) \
     RETURNING id, 0 AS outcome";

/// Plain rows, one array per column.
pub(crate) const INSERT_MANY: &str = "INSERT INTO delayed_jobs \
         (name, handler, priority, queue, run_at, max_run_time, concurrency_key, concurrency_limit, \
          rate_limit, rate_period_ms) \
     SELECT n, h, p, q, coalesce(to_timestamp(a), now() + d * interval '1 second'), m, ck, cl, rl, rp \
     FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::float8[], $6::float8[], \
                 $7::int4[], $8::text[], $9::int4[], $10::int4[], $11::int4[]) \
          AS t(n, h, p, q, a, d, m, ck, cl, rl, rp) \
     RETURNING id, 0 AS outcome";

/// The insert of unique rows: a row whose key a live row holds (the partial unique index
/// `delayed_jobs_unique`) is not inserted; the holder is returned instead, and with `$14`
/// (replace) a holder still waiting takes the new row's payload, priority, queue, run time
/// and limits. The index decides under concurrency: a second insert of a key waits for the
/// first's transaction and then sees its row. `xmax = 0` only on a row this statement
/// inserted (an upsert's update leaves its lock in xmax).
pub(crate) const INSERT_UNIQUE: &str = "INSERT INTO delayed_jobs AS j \
         (name, handler, priority, queue, run_at, max_run_time, concurrency_key, concurrency_limit, \
          rate_limit, rate_period_ms, unique_key, unique_running) \
     SELECT n, h, p, q, coalesce(to_timestamp(a), now() + d * interval '1 second'), m, ck, cl, rl, rp, u, ur \
     FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::float8[], $6::float8[], \
                 $7::int4[], $8::text[], $9::int4[], $10::int4[], $11::int4[], $12::text[], $13::bool[]) \
          AS t(n, h, p, q, a, d, m, ck, cl, rl, rp, u, ur) \
     ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO UPDATE SET \
         handler = CASE WHEN $14 AND j.locked_at IS NULL THEN EXCLUDED.handler ELSE j.handler END, \
         priority = CASE WHEN $14 AND j.locked_at IS NULL THEN EXCLUDED.priority ELSE j.priority END, \
         queue = CASE WHEN $14 AND j.locked_at IS NULL THEN EXCLUDED.queue ELSE j.queue END, \
         run_at = CASE WHEN $14 AND j.locked_at IS NULL THEN EXCLUDED.run_at ELSE j.run_at END, \
         max_run_time = CASE WHEN $14 AND j.locked_at IS NULL THEN EXCLUDED.max_run_time ELSE j.max_run_time END, \
         concurrency_key = CASE WHEN $14 AND j.locked_at IS NULL THEN EXCLUDED.concurrency_key ELSE j.concurrency_key END, \
         concurrency_limit = CASE WHEN $14 AND j.locked_at IS NULL THEN EXCLUDED.concurrency_limit ELSE j.concurrency_limit END, \
         rate_limit = CASE WHEN $14 AND j.locked_at IS NULL THEN EXCLUDED.rate_limit ELSE j.rate_limit END, \
         rate_period_ms = CASE WHEN $14 AND j.locked_at IS NULL THEN EXCLUDED.rate_period_ms ELSE j.rate_period_ms END, \
         updated_at = CASE WHEN $14 AND j.locked_at IS NULL THEN now() ELSE j.updated_at END \
     RETURNING j.id, CASE WHEN j.xmax = 0 THEN 0 WHEN $14 AND j.locked_at IS NULL THEN 2 ELSE 1 END AS outcome";
