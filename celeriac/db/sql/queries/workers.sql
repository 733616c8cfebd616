-- name: register_worker
-- Add a worker row; its id keys the session advisory lock that proves it alive.
INSERT INTO {schema}.workers (name, hostname, pid, pool, concurrency, queues, info)
VALUES (%(name)s, %(hostname)s, %(pid)s, %(pool)s, %(concurrency)s, %(queues)s, %(info)s::jsonb)
RETURNING id;

-- name: lock_worker
-- Hold the worker's liveness lock on this session; released when the connection closes.
SELECT pg_try_advisory_lock(%(lock_ns)s, %(worker_id)s::int);

-- name: live_worker_named
-- Is a worker of this name alive (its liveness lock held by some session)?
SELECT w.id, w.pid, w.hostname FROM {schema}.workers AS w
WHERE w.name = %(name)s AND w.stopped_at IS NULL
  AND EXISTS (SELECT 1 FROM pg_locks AS l
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.classid = %(lock_ns)s::int::oid AND l.objid = w.id::int::oid);

-- name: heartbeat
-- Prove liveness for the heartbeat-based check (network partitions keep locks for a while).
-- No row back: this worker was declared dead meanwhile (its jobs rescued) and must
-- register again rather than keep claiming under a stopped id.
UPDATE {schema}.workers SET heartbeat_at = now(), info = info || %(info)s::jsonb
WHERE id = %(worker_id)s AND stopped_at IS NULL
RETURNING id;

-- name: stop_worker
-- A worker that stops cleanly says so.
UPDATE {schema}.workers SET stopped_at = now() WHERE id = %(worker_id)s;

-- name: adopt_worker
-- A worker registering again while its previous session still holds the old liveness
-- lock (a cut the server has not noticed yet): its running jobs move to the new id and
-- the old row stops, so the rescuer never takes jobs that are still running.
WITH moved AS (
    UPDATE {schema}.jobs SET worker_id = %(new_id)s
    WHERE worker_id = %(old_id)s AND state = 'running'
    RETURNING id
)
UPDATE {schema}.workers SET stopped_at = now()
WHERE id = %(old_id)s
RETURNING (SELECT count(*) FROM moved);

-- name: find_dead_workers
-- Workers that are gone: their liveness lock is not held (the process or its connection
-- died) and they have not heartbeated for a short grace (a live worker whose session was
-- cut reconnects, re-takes the lock and heartbeats within it), or their heartbeat is
-- older than the timeout (cut off from the database). When every session was reset at
-- once — a restart, or a crashed backend making the postmaster reset all sessions
-- without restarting itself — a worker that has not heartbeated since gets
-- %(reset_grace)s s more, or live workers still reconnecting would be taken for dead.
-- The checkpointer is restarted by both, so its start time is the last reset; roles
-- that cannot see it (not pg_read_all_stats) fall back to the postmaster's start, and the
-- rescuer's own wait after its connection was reset (worker/maintenance.py) covers them.
WITH reset AS (
    SELECT coalesce((SELECT max(backend_start) FROM pg_stat_activity
                     WHERE backend_type = 'checkpointer'),
                    pg_postmaster_start_time()) AS at
)
UPDATE {schema}.workers AS w SET stopped_at = now()
FROM reset
WHERE w.stopped_at IS NULL
  AND (w.heartbeat_at < now() - make_interval(secs => %(lost_timeout)s::float8)
       OR (w.heartbeat_at < now() - make_interval(secs => %(grace)s::float8)
           AND (w.heartbeat_at >= reset.at
                OR reset.at < now() - make_interval(
                    secs => %(grace)s::float8 + %(reset_grace)s::float8))
           AND NOT EXISTS (SELECT 1 FROM pg_locks AS l
                           WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                             AND l.database = (SELECT oid FROM pg_database
                                               WHERE datname = current_database())
                             AND l.classid = %(lock_ns)s::int::oid
                             AND l.objid = w.id::int::oid)))
RETURNING w.id, w.name;

-- name: orphaned_jobs
-- Running jobs whose worker is stopped or unknown, locked so one rescuer handles each.
SELECT j.id, j.attempt, j.task_id, j.task_name, j.queue, j.priority, j.eta, j.expires,
       j.retries, j.acks_late, j.reject_on_worker_lost, j.content_type, j.headers, j.body,
       false AS revoked
FROM {schema}.jobs AS j
LEFT JOIN {schema}.workers AS w ON w.id = j.worker_id
WHERE j.state = 'running' AND (w.id IS NULL OR w.stopped_at IS NOT NULL)
ORDER BY j.id
LIMIT %(limit)s
FOR UPDATE OF j SKIP LOCKED;

-- name: prune_workers
-- Forget workers stopped long ago.
DELETE FROM {schema}.workers WHERE stopped_at < now() - interval '1 day';

-- name: live_workers
-- Workers alive now, for status and inspect.
SELECT id, name, hostname, pid, pool, concurrency, queues, started_at, heartbeat_at, info
FROM {schema}.workers WHERE stopped_at IS NULL ORDER BY name;
