-- name: beat_entries
-- The enabled schedule, re-read by every beat each loop so changes take effect at once.
SELECT name, task, schedule, args, kwargs, options, last_run_at, total_run_count
FROM {schema}.periodic_tasks WHERE enabled ORDER BY name;

-- name: upsert_periodic_task
-- Store an entry; a changed schedule keeps its state (last_run_at, total_run_count).
-- A new entry starts counting now: an interval runs one period after it was added.
INSERT INTO {schema}.periodic_tasks AS p (name, task, schedule, args, kwargs, options,
                                          enabled, source, last_run_at)
VALUES (%(name)s, %(task)s, %(schedule)s::jsonb, %(args)s::jsonb, %(kwargs)s::jsonb,
        %(options)s::jsonb, %(enabled)s, %(source)s, now())
ON CONFLICT (name) DO UPDATE SET
    task = excluded.task, schedule = excluded.schedule, args = excluded.args,
    kwargs = excluded.kwargs, options = excluded.options, enabled = excluded.enabled,
    source = excluded.source, updated_at = now()
WHERE (p.task, p.schedule, p.args, p.kwargs, p.options, p.enabled, p.source)
      IS DISTINCT FROM (excluded.task, excluded.schedule, excluded.args, excluded.kwargs,
                        excluded.options, excluded.enabled, excluded.source);

-- name: drop_config_entries
-- Config entries no longer in beat_schedule go (entries stored at run time stay).
DELETE FROM {schema}.periodic_tasks
WHERE source = 'config' AND NOT (name = ANY(%(names)s));

-- name: delete_periodic_task
-- Remove one entry.
DELETE FROM {schema}.periodic_tasks WHERE name = %(name)s RETURNING name;

-- name: set_periodic_enabled
-- Enable or disable one entry.
UPDATE {schema}.periodic_tasks SET enabled = %(enabled)s, updated_at = now()
WHERE name = %(name)s RETURNING name;

-- name: claim_tick
-- Record a tick; the primary key lets exactly one beat insert it. Runs in the transaction
-- that publishes the task, so a tick is recorded if and only if its task was published.
INSERT INTO {schema}.periodic_ticks (name, run_at, task_id)
VALUES (%(name)s, %(run_at)s, %(task_id)s)
ON CONFLICT (name, run_at) DO NOTHING
RETURNING task_id;

-- name: ticked
-- Advance the entry's state to the tick just published (never backwards).
UPDATE {schema}.periodic_tasks
SET last_run_at = %(run_at)s, total_run_count = total_run_count + 1
WHERE name = %(name)s AND (last_run_at IS NULL OR last_run_at < %(run_at)s);

-- name: prune_ticks
-- Old tick records are only history; the uniqueness matters for recent ones.
DELETE FROM {schema}.periodic_ticks WHERE created_at < now() - interval '1 day';

-- name: list_periodic_tasks
-- Every entry with its state (celeriac schedule list).
SELECT name, task, schedule, args, kwargs, enabled, source, last_run_at, total_run_count
FROM {schema}.periodic_tasks ORDER BY name;
