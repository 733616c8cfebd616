-- name: revoke
-- Record revoked task ids durably, delete their waiting jobs and store REVOKED for them,
-- in one statement. Running jobs are left to the worker (terminate is a NOTIFY). Deleted
-- chord parts count down their chords. Returns the deleted jobs (their chains are marked
-- by the caller) and the chords that became complete (kind 'chord').
WITH ids AS (
    SELECT unnest(%(task_ids)s::text[]) AS task_id
), rec AS (
    INSERT INTO {schema}.revoked (task_id, expires_at, terminate, signal)
    SELECT task_id, now() + make_interval(secs => %(expires)s::float8), %(terminate)s, %(signal)s
    FROM ids
    ON CONFLICT (task_id) DO UPDATE SET terminate = excluded.terminate, signal = excluded.signal
    RETURNING task_id
), gone AS (
    DELETE FROM {schema}.jobs AS j USING ids
    WHERE j.task_id = ids.task_id AND j.state = 'queued'
    RETURNING j.task_id, j.task_name, j.queue, j.retries, j.headers, j.content_type, j.body
), saved AS (
    INSERT INTO {schema}.results AS r (task_id, status, content_type, result, name, request_type,
                                       request, retries, queue, parent_id, root_id, group_id,
                                       date_done, expires_at)
    SELECT g.task_id, 'REVOKED', %(content_type)s, %(result)s, g.task_name, g.content_type,
           g.body, g.retries, g.queue, g.headers->>'parent_id', g.headers->>'root_id',
           g.headers->>'group', now(), now() + make_interval(secs => %(result_expires)s::float8)
    FROM gone AS g
    -- (a task waiting to retry has a RETRY row: its traceback is not the revoke's)
    ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, result = excluded.result,
        content_type = excluded.content_type, traceback = NULL, date_done = excluded.date_done,
        expires_at = excluded.expires_at
    RETURNING task_id
), parts AS (
    SELECT g.headers->>'group' AS group_id, count(*)::int AS n
    FROM gone AS g WHERE g.headers->>'group' IS NOT NULL
    GROUP BY 1
), locked AS MATERIALIZED (
    SELECT c.group_id FROM {schema}.chords AS c
    WHERE c.group_id IN (SELECT group_id FROM parts)
    ORDER BY c.group_id
    FOR UPDATE
), joined AS (
    UPDATE {schema}.chords AS c SET remaining = c.remaining - p.n
    FROM locked AS l JOIN parts AS p USING (group_id)
    WHERE c.group_id = l.group_id
    RETURNING c.group_id, c.remaining
), woken AS (
    SELECT (SELECT count(*) FROM rec) AS recorded,
           (SELECT pg_notify(%(channel)s, string_agg(task_id, ',')) FROM saved) AS notified
)
SELECT 'job' AS kind, g.task_id, g.content_type, g.body
FROM gone AS g LEFT JOIN woken ON true
UNION ALL
SELECT 'chord', j.group_id, NULL, NULL FROM joined AS j LEFT JOIN woken ON true
WHERE j.remaining <= 0
UNION ALL
SELECT 'none', NULL, NULL, NULL FROM woken;

-- name: revoked_among
-- Which of these task ids are revoked (checked before a claimed job runs).
SELECT task_id FROM {schema}.revoked WHERE task_id = ANY(%(task_ids)s);

-- name: list_revoked
-- All revoked ids still remembered.
SELECT task_id FROM {schema}.revoked ORDER BY revoked_at;

-- name: prune_revoked
-- Forget revoked ids after their expiry.
DELETE FROM {schema}.revoked WHERE expires_at < now();
