-- name: get_result
-- One task's stored state (AsyncResult.state / .result / .traceback / .get()).
SELECT task_id, status, content_type, result, traceback, name, request_type, request, worker,
       retries, queue, parent_id, root_id, group_id, date_started, date_done
FROM {schema}.results WHERE task_id = %(task_id)s;

-- name: get_results
-- Several tasks' stored states at once (GroupResult).
SELECT task_id, status, content_type, result, traceback, name, request_type, request, worker,
       retries, queue, parent_id, root_id, group_id, date_started, date_done
FROM {schema}.results WHERE task_id = ANY(%(task_ids)s);

-- name: store_state
-- Store one state from outside the finish path: update_state (PROGRESS, STARTED) and
-- results recorded by clients (revoke). A final state is never replaced by an unready one.
WITH saved AS (
    INSERT INTO {schema}.results AS r (task_id, status, content_type, result, traceback, name,
                                       worker, date_started, date_done, expires_at)
    VALUES (%(task_id)s, %(status)s, %(content_type)s, %(result)s, %(traceback)s, %(name)s,
            %(worker)s, %(date_started)s, now(), now() + make_interval(secs => %(expires)s::float8))
    ON CONFLICT (task_id) DO UPDATE SET
        status = excluded.status, content_type = excluded.content_type, result = excluded.result,
        traceback = excluded.traceback, name = coalesce(excluded.name, r.name),
        worker = coalesce(excluded.worker, r.worker),
        date_started = coalesce(excluded.date_started, r.date_started),
        date_done = excluded.date_done, expires_at = excluded.expires_at
    WHERE r.status NOT IN ('SUCCESS', 'FAILURE', 'REVOKED')
       OR excluded.status IN ('SUCCESS', 'FAILURE', 'REVOKED')
    RETURNING task_id
)
SELECT pg_notify(%(channel)s, task_id) FROM saved;

-- name: forget
-- Delete stored results (AsyncResult.forget).
DELETE FROM {schema}.results WHERE task_id = ANY(%(task_ids)s);

-- name: prune_results
-- Delete a batch of expired results; called repeatedly by the maintenance leader.
-- = ANY(ARRAY(...)), not IN (...): the planner turned IN into a hash semi-join over a
-- sequential scan of the whole table, so every batch read every result (pruning a
-- million took quadratic time); the array is probed through the primary key.
WITH gone AS (
    DELETE FROM {schema}.results
    WHERE task_id = ANY(ARRAY(SELECT task_id FROM {schema}.results
                              WHERE expires_at < now() ORDER BY expires_at LIMIT %(limit)s))
      AND expires_at < now()
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: save_group
-- GroupResult.save(): remember which tasks form a group.
INSERT INTO {schema}.groups (group_id, task_ids, expires_at)
VALUES (%(group_id)s, %(task_ids)s, now() + make_interval(secs => %(expires)s::float8))
ON CONFLICT (group_id) DO UPDATE SET task_ids = excluded.task_ids, expires_at = excluded.expires_at;

-- name: get_group
-- GroupResult.restore(id).
SELECT task_ids FROM {schema}.groups WHERE group_id = %(group_id)s;

-- name: delete_group
-- GroupResult.delete().
DELETE FROM {schema}.groups WHERE group_id = %(group_id)s;

-- name: dead_rows
-- Dead row versions of the queue's churning tables, for the maintenance leader's VACUUM:
-- only tables this role owns (VACUUM skips the others with a warning). The statistics
-- lag their backends by up to a second, which is fine for a threshold.
SELECT s.relname, s.n_dead_tup
FROM pg_stat_user_tables AS s
JOIN pg_class AS c ON c.oid = s.relid
WHERE s.schemaname = %(schema)s AND s.relname = ANY(%(tables)s)
  AND pg_has_role(c.relowner, 'USAGE');
