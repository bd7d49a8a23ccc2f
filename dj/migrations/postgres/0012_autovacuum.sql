-- dj 0012: autovacuum settings for the queue table. Every finished job leaves a dead row, and
-- PostgreSQL's defaults vacuum a table once a fifth of its rows (plus 50) are dead, throttled
-- by a cost delay: on a queue table that churns thousands of rows a second that means hundreds
-- of thousands of dead rows and their index entries for the claim to walk between vacuums.
-- These settings vacuum it once 1,000 rows plus 1 % are dead, unthrottled, and analyze it at
-- 2 % changed. Measured with the soak (5,000 jobs/s for 4 minutes, autovacuum on, its default
-- one-minute naptime): steady dead rows 243,000 -> 87,000, index 7.4 -> 5.3 MB, pickup p99
-- 63 -> 35 ms (benches/README.md). Autovacuum still starts no more often than
-- `autovacuum_naptime` (a server setting); a server that runs without autovacuum must vacuum
-- the table itself.
ALTER TABLE delayed_jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
