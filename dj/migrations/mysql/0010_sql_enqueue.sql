-- dj 0010: enqueue from SQL, for triggers, the mysql client and programs in other languages.
--
--   CALL dj_enqueue('send_email', '{"to": "a@example.com"}', 'mail', NULL, NULL, NULL, @id);
--   SELECT @id;
--
-- The arguments are job, args, queue, priority, run_at, max_run_time, and the OUT parameter
-- that receives the new id: MySQL procedures have no defaults, so pass NULL for each left
-- out (args '{}', priority 0, run_at now, max_run_time the worker's). run_at is UTC,
-- 'YYYY-MM-DD HH:MM:SS[.ffffff]'. The id comes back through OUT rather than a result set so
-- that a trigger on another table may call it (a procedure that returns a result set cannot
-- be called from a trigger).
--
-- The row is the row dj's own enqueue makes (the handler {"job": NAME, "args": ARGS}), checked
-- by the same rules: a job name (here at most 255 characters, the column's size), JSON args,
-- a handler of at most 1 MiB, a queue name of 1 to 255 bytes without control characters or
-- commas and without spaces at either end, a max_run_time of at least one second; a refusal
-- is SQLSTATE 22023 naming the rule. The insert moves max(id), which idle workers watch (0009).
--
-- Where MySQL differs: the other backends offer `INSERT INTO dj_enqueue (..) VALUES ..`, a
-- view with an INSTEAD OF trigger. MySQL has neither INSTEAD OF triggers nor triggers on
-- views, and a table's trigger cannot write its own table (to delete the row it fires for),
-- so there is no such table here.
-- Nor is there PostgreSQL's dj_enqueue_many: a procedure cannot return the ids of a bulk
-- insert in order (AUTO_INCREMENT may interleave them) nor be made all or none in itself;
-- calls made in one transaction (START TRANSACTION; CALL ..; CALL ..; COMMIT) are all or
-- none. A procedure rather than a function: a stored function that writes a table needs
-- log_bin_trust_function_creators (or SUPER) on a server with binary logging.
--
-- SQL SECURITY INVOKER, as PostgreSQL's functions: the caller needs INSERT on delayed_jobs.
-- Like every stored routine it runs with the sql_mode of the session that created it, so the
-- migration should run under a strict sql_mode (the servers' default), which turns a value
-- that does not fit a parameter (a priority of 'high', a run_at of 'soon') into an error (a
-- fractional priority is rounded, as in any INT column).
-- The body uses single quotes only and no backslashes, so ANSI_QUOTES or NO_BACKSLASH_ESCAPES
-- in that sql_mode do not change it. No DELIMITER: the backend sends this file as one
-- multi-statement batch, which the server parses whole, BEGIN .. END included.
DROP PROCEDURE IF EXISTS dj_enqueue;

CREATE PROCEDURE dj_enqueue(
    IN  p_job          TEXT CHARACTER SET utf8mb4,
    IN  p_args         LONGTEXT CHARACTER SET utf8mb4,
    IN  p_queue        TEXT CHARACTER SET utf8mb4,
    IN  p_priority     INT,
    IN  p_run_at       DATETIME(6),
    IN  p_max_run_time INT,
    OUT p_id           BIGINT
)
MODIFIES SQL DATA
SQL SECURITY INVOKER
BEGIN
    DECLARE v_handler LONGTEXT CHARACTER SET utf8mb4;
    DECLARE v_message VARCHAR(128) CHARACTER SET utf8mb4;
    DECLARE v_bad BOOLEAN DEFAULT FALSE;
    DECLARE v_i INT DEFAULT 1;
    DECLARE v_c BIGINT;

    IF p_job IS NULL OR CHAR_LENGTH(p_job) = 0 THEN
        SIGNAL SQLSTATE '22023' SET MESSAGE_TEXT =
            'dj_enqueue: a job needs its name (the job''s #[job(name)] or type name)';
    END IF;
    IF CHAR_LENGTH(p_job) > 255 THEN
        SIGNAL SQLSTATE '22023' SET MESSAGE_TEXT =
            'dj_enqueue: a job name is at most 255 characters';
    END IF;
    IF p_args IS NOT NULL AND NOT JSON_VALID(p_args) THEN
        SIGNAL SQLSTATE '22023' SET MESSAGE_TEXT =
            'dj_enqueue: args must be JSON text, such as ''{"id": 42}''';
    END IF;

    -- JSON_EXTRACT(.., '$') makes the text a JSON value, so JSON_OBJECT nests it instead of
    -- quoting it as a string (MySQL's CAST(.. AS JSON) does not exist on MariaDB).
    SET v_handler = JSON_OBJECT('job', p_job, 'args', JSON_EXTRACT(COALESCE(p_args, '{}'), '$'));
    IF LENGTH(v_handler) > 1048576 THEN
        SET v_message = CONCAT('dj_enqueue: the job is ', LENGTH(v_handler),
            ' bytes stored; at most 1048576 (1 MiB): store the data elsewhere and pass its key');
        SIGNAL SQLSTATE '22023' SET MESSAGE_TEXT = v_message;
    END IF;

    -- The queue rule, as dj's: 1 to 255 bytes, no control character (Unicode Cc: U+0000 to
    -- U+001F, U+007F to U+009F), no comma, and no white space (Unicode White_Space that is not
    -- a control character) at either end. Each character is read as its code point (ORD of
    -- its UTF-32 form), which needs no regular expression (ICU on MySQL, PCRE on MariaDB).
    IF p_queue IS NOT NULL THEN
        SET v_bad = CHAR_LENGTH(p_queue) = 0 OR LENGTH(p_queue) > 255 OR LOCATE(',', p_queue) > 0;
        WHILE NOT v_bad AND v_i <= CHAR_LENGTH(p_queue) DO
            SET v_c = ORD(CONVERT(SUBSTRING(p_queue, v_i, 1) USING utf32));
            SET v_bad = v_c <= 31 OR v_c BETWEEN 127 AND 159
                OR ((v_i = 1 OR v_i = CHAR_LENGTH(p_queue))
                    AND v_c IN (32, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197, 8198, 8199,
                                8200, 8201, 8202, 8232, 8233, 8239, 8287, 12288));
            SET v_i = v_i + 1;
        END WHILE;
        IF v_bad THEN
            SIGNAL SQLSTATE '22023' SET MESSAGE_TEXT =
                'dj_enqueue: invalid queue name: use 1 to 255 bytes without control characters or commas, and no spaces at either end';
        END IF;
    END IF;

    IF p_max_run_time IS NOT NULL AND p_max_run_time < 1 THEN
        SIGNAL SQLSTATE '22023' SET MESSAGE_TEXT =
            'dj_enqueue: max_run_time must be at least 1 second, or NULL for the worker''s';
    END IF;

    -- UTC_TIMESTAMP, not the column defaults: a mysql client session is rarely at UTC.
    INSERT INTO delayed_jobs
        (name, handler, priority, queue, run_at, max_run_time, created_at, updated_at)
    VALUES (p_job, v_handler, COALESCE(p_priority, 0), p_queue,
            COALESCE(p_run_at, UTC_TIMESTAMP(6)), p_max_run_time,
            UTC_TIMESTAMP(6), UTC_TIMESTAMP(6));
    SET p_id = LAST_INSERT_ID();
END;
