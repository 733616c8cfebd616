-- Publishing is idempotent by task id: a job's task id is unique among live (queued or
-- running) jobs, so a publish retried after a lost COMMIT reply is skipped
-- (INSERT ... ON CONFLICT DO NOTHING) instead of queueing the task twice.

-- Duplicates published before this migration: the oldest live job of each task id is
-- kept, the others are moved aside as dead letters (kept, with the reason), never dropped.
UPDATE {schema}.jobs AS j
SET state = 'dead', worker_id = NULL,
    error = 'duplicate of job ' || k.kept || ' (same task id; moved aside by migration 0006)'
FROM (SELECT task_id, min(id) AS kept FROM {schema}.jobs WHERE state <> 'dead'
      GROUP BY task_id HAVING count(*) > 1) AS k
WHERE j.task_id = k.task_id AND j.state <> 'dead' AND j.id <> k.kept;

DROP INDEX {schema}.jobs_task_id;
-- Revoke and inspection find jobs by task id; publish relies on it being unique.
CREATE UNIQUE INDEX jobs_task_id ON {schema}.jobs (task_id) WHERE state <> 'dead';
