-- dj 0012: PostgreSQL's 0012 sets autovacuum settings on its queue table. InnoDB has no
-- per-table equivalent: a deleted row's record, and its index entries, are delete-marked and
-- then removed by the server's background purge, which only server settings tune
-- (innodb_purge_threads, innodb_max_purge_lag); a long-open transaction holds it back, as it
-- holds back vacuum. Nothing changes here; the number is kept so that the backends count
-- their migrations alike.
DO 0;
