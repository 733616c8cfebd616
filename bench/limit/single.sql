-- One job, three single-row commits: insert, claim, finish (delete + store result).
INSERT INTO jobs (body) VALUES ('\x5b5d'::bytea);
WITH next AS (
    SELECT id FROM jobs WHERE state = 'queued' AND queue = 'celery' AND eta <= now()
    ORDER BY queue, eta, id LIMIT 1 FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs SET state = 'running' FROM next WHERE jobs.id = next.id RETURNING jobs.id
)
SELECT coalesce(max(id), 0) AS claimed FROM claimed \gset
WITH done AS (DELETE FROM jobs WHERE id = :claimed RETURNING id)
INSERT INTO results (task_id, status, result) SELECT id, 'SUCCESS', 'null' FROM done;
