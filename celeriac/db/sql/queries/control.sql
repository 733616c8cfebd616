-- name: insert_reply
-- A worker's reply to a remote-control request; the NOTIFY wakes the waiting client.
WITH saved AS (
    INSERT INTO {schema}.control_replies (request_id, node, reply)
    VALUES (%(request_id)s, %(node)s, %(reply)s::json)
    ON CONFLICT (request_id, node) DO UPDATE SET reply = excluded.reply
    RETURNING request_id
)
SELECT pg_notify(%(channel)s, request_id) FROM saved;

-- name: take_replies
-- The client reads the replies to its request and removes them in the same statement.
DELETE FROM {schema}.control_replies WHERE request_id = %(request_id)s RETURNING node, reply;

-- name: prune_replies
-- Replies nobody collected (the client timed out or died) are dropped after a while.
DELETE FROM {schema}.control_replies WHERE created_at < now() - interval '10 minutes';

-- name: live_nodes
-- Workers alive now: registered, not stopped, and their liveness lock held by a session
-- (a killed worker drops out the moment its connection closes, not at the next rescue).
SELECT w.name, w.pid, w.hostname, w.pool, w.concurrency, w.queues, w.started_at,
       w.heartbeat_at
FROM {schema}.workers AS w
WHERE w.stopped_at IS NULL
  AND EXISTS (SELECT 1 FROM pg_locks AS l
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.classid = %(lock_ns)s::int::oid AND l.objid = w.id::int::oid)
ORDER BY w.name;

-- name: scheduled_jobs
-- Jobs of these queues waiting for their eta (inspect scheduled).
SELECT task_id, task_name, queue, priority, eta, headers, content_type, body
FROM {schema}.jobs
WHERE state = 'queued' AND queue = ANY(%(queues)s) AND eta > now()
ORDER BY eta
LIMIT %(limit)s;

-- name: due_jobs
-- How many jobs of these queues are due now, capped (the autoscaler's demand signal).
SELECT count(*) FROM (
    SELECT 1 FROM {schema}.jobs
    WHERE state = 'queued' AND queue = ANY(%(queues)s) AND eta <= now()
    LIMIT %(limit)s
) AS due;

-- name: set_worker_queues
-- Record the queues a worker consumes after add_consumer / cancel_consumer.
UPDATE {schema}.workers SET queues = %(queues)s WHERE id = %(worker_id)s;
