-- name: insert_event
-- Record one task event and tell followers (celeriac events) its id.
WITH saved AS (
    INSERT INTO {schema}.events (type, task_id, hostname, fields)
    VALUES (%(type)s, %(task_id)s, %(hostname)s, %(fields)s::jsonb)
    RETURNING id
)
SELECT pg_notify(%(channel)s, id::text) FROM saved;

-- name: events_after
-- Events newer than an id, oldest first (celeriac events follows with this).
SELECT id, type, task_id, hostname, "timestamp", fields
FROM {schema}.events WHERE id > %(after)s ORDER BY id LIMIT %(limit)s;

-- name: last_event_id
-- Where a follower starts when it shows only the last N events.
SELECT coalesce(max(id), 0) FROM {schema}.events;

-- name: prune_events
-- Events are history for monitoring; a day is kept.
DELETE FROM {schema}.events WHERE "timestamp" < now() - interval '1 day';

-- name: insert_events
-- Record events of one type from one host for several tasks (task-sent for a batch of
-- published messages); one NOTIFY wakes followers, who read everything newer anyway.
WITH saved AS (
    INSERT INTO {schema}.events (type, task_id, hostname, fields)
    SELECT %(type)s, t.task_id, %(hostname)s, t.fields::jsonb
    FROM unnest(%(task_ids)s::text[], %(fields)s::text[]) AS t(task_id, fields)
    RETURNING id
)
SELECT pg_notify(%(channel)s, max(id)::text) FROM saved HAVING count(*) > 0;
