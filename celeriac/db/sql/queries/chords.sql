-- name: take_chords
-- Remove chords whose counter reached zero and return them for joining. Runs in the
-- transaction whose decrement reached zero, which still holds the row lock: no other
-- transaction can take the same chord, so each body is published exactly once. The body
-- goes in its workflow's place (sort_key), before later workflows' work.
DELETE FROM {schema}.chords
WHERE group_id = ANY(%(group_ids)s) AND remaining <= 0
RETURNING group_id, task_ids, content_type, body, sort_key;

-- name: store_final
-- Store final states for tasks that will never run (the rest of a failed chain, a chord
-- body whose header failed) and count the chord parts among them, locking chords in
-- group_id order so concurrent transactions never deadlock. A state already final is
-- kept and not counted again. Returns the chords that became complete.
WITH m AS (
    SELECT * FROM unnest(%(task_ids)s::text[], %(group_ids)s::text[], %(statuses)s::text[],
                         %(content_types)s::text[], %(results)s::bytea[],
                         %(tracebacks)s::text[], %(names)s::text[])
         AS m(task_id, group_id, status, content_type, result, traceback, name)
), saved AS (
    INSERT INTO {schema}.results AS r (task_id, status, content_type, result, traceback, name,
                                       group_id, date_done, expires_at)
    SELECT m.task_id, m.status, m.content_type, m.result, m.traceback, m.name, m.group_id,
           now(), now() + make_interval(secs => %(expires)s::float8)
    FROM m
    ON CONFLICT (task_id) DO UPDATE SET
        status = excluded.status, content_type = excluded.content_type, result = excluded.result,
        traceback = excluded.traceback, name = coalesce(r.name, excluded.name),
        group_id = excluded.group_id, date_done = excluded.date_done,
        expires_at = excluded.expires_at
    WHERE r.status NOT IN ('SUCCESS', 'FAILURE', 'REVOKED')
    RETURNING task_id
), parts AS (
    SELECT m.group_id, count(*)::int AS n
    FROM m JOIN saved USING (task_id)
    WHERE m.group_id IS NOT NULL
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
)
SELECT group_id FROM joined WHERE remaining <= 0;

-- name: prune_chords
-- Forget chords whose header never completed (a part dead-lettered, results expired).
DELETE FROM {schema}.chords WHERE created_at < now() - make_interval(secs => %(expires)s::float8);

-- name: add_to_chord
-- Task.add_to_chord: one more header task, its result last in the body's list. Runs while
-- the calling header task still counts, so the chord cannot have joined yet; the new
-- task's message is published in the same transaction.
UPDATE {schema}.chords
SET task_ids = task_ids || %(task_id)s::text, remaining = remaining + 1
WHERE group_id = %(group_id)s
RETURNING group_id;
