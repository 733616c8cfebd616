-- 100 jobs, three commits: insert 100, claim 100, finish 100 (delete + store results).
INSERT INTO jobs (body) SELECT '\x5b5d'::bytea FROM generate_series(1, 100);
WITH next AS (
    SELECT id FROM jobs WHERE state = 'queued' AND queue = 'celery' AND eta <= now()
    ORDER BY queue, eta, id LIMIT 100 FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs SET state = 'running' FROM next WHERE jobs.id = next.id RETURNING jobs.id
)
SELECT coalesce(string_agg(id::text, ','), '0') AS claimed FROM claimed \gset
WITH done AS (DELETE FROM jobs WHERE id IN (:claimed) RETURNING id)
INSERT INTO results (task_id, status, result) SELECT id, 'SUCCESS', 'null' FROM done;
