-- dj 0011: the fast lane's batch records (see the PostgreSQL schema), and the maintenance task
-- `reindex`. InnoDB has PostgreSQL's kind of row locks (FOR UPDATE SKIP LOCKED, held by an
-- open transaction), so a MySQL worker can keep a fast lane as a PostgreSQL one does; the
-- table is here for it, whether or not the backend uses it. `ids` is a JSON array of job ids
-- (MySQL has no array type). The `reindex` row keeps the backends' maintenance tasks alike;
-- on InnoDB a rebuild would be an online ALTER TABLE delayed_jobs FORCE, if the backend
-- runs one at all.
CREATE TABLE IF NOT EXISTS dj_lanes (
    id        BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    worker    VARCHAR(512) NOT NULL,
    ids       LONGTEXT     NOT NULL CHECK (JSON_VALID(ids)),
    taken_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

INSERT IGNORE INTO dj_maintenance (task) VALUES ('reindex');
