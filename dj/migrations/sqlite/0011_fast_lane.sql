-- dj 0011: nothing on SQLite. PostgreSQL's 0011 adds the fast lane's batch records; a
-- SQLite worker has no fast lane (one writer at a time, and no row locks to hold), so the
-- version is recorded here only to keep the two backends' version lists the same.
SELECT 1;
