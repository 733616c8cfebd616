-- name: publish
-- Insert a batch of jobs in one statement (unnest arrays) and wake idle workers of the
-- queues that got a job: one NOTIFY per queue, not per job. Jobs due later notify too, so
-- a sleeping worker learns the new earliest eta instead of waiting for its next poll.
-- The chords whose headers are among the jobs are created in the same statement, so no
-- header task can end before its chord's counter exists.
-- Idempotent by task id: a task id that is already queued or running (the unique index
-- jobs_task_id) or already has a result is skipped, so a publish retried after a lost
-- COMMIT reply never makes a second job. (On its own connection the broker first runs
-- the publish queries without ON CONFLICT DO NOTHING — speculative insertion is slower —
-- and with it after a unique violation: Broker._write.) %(durable)s false commits
-- asynchronously (synchronous_commit off for this transaction only: delivery_mode
-- "transient"). A job's place in the queue (sort_key) is its eta, or %(sort_key)s when
-- given (a chord body joined: its workflow's place) for jobs due now.
WITH ins AS (
    INSERT INTO {schema}.jobs (task_id, task_name, queue, priority, eta, expires, retries,
                               acks_late, reject_on_worker_lost, content_type, headers, body,
                               sort_key)
    SELECT t.task_id, t.task_name, t.queue, t.priority, coalesce(t.eta, now()), t.expires,
           t.retries, t.acks_late, t.reject_on_worker_lost, t.content_type, t.headers::jsonb, t.body,
           coalesce(t.eta, %(sort_key)s::timestamptz, now())
    FROM unnest(%(task_ids)b::text[], %(task_names)b::text[], %(queues)b::text[],
                %(priorities)b::smallint[], %(etas)b::timestamptz[], %(expires)b::timestamptz[],
                %(retries)b::int[], %(acks_late)b::bool[], %(reject_on_worker_lost)b::bool[],
                %(content_types)b::text[], %(headers)b::text[], %(bodies)b::bytea[])
         AS t(task_id, task_name, queue, priority, eta, expires, retries, acks_late,
              reject_on_worker_lost, content_type, headers, body)
    WHERE NOT EXISTS (SELECT 1 FROM {schema}.results AS r WHERE r.task_id = t.task_id)
    ON CONFLICT DO NOTHING
    RETURNING queue
), new_chords AS (
    INSERT INTO {schema}.chords (group_id, task_ids, remaining, content_type, body, sort_key)
    SELECT h.group_id, ids.a, cardinality(ids.a), h.content_type, h.body,
           coalesce(%(sort_key)s::timestamptz, now())
    FROM unnest(%(h_group_ids)b::text[], %(h_task_ids)b::text[], %(h_content_types)b::text[],
                %(h_bodies)b::bytea[]) AS h(group_id, task_ids, content_type, body)
    CROSS JOIN LATERAL (SELECT ARRAY(SELECT jsonb_array_elements_text(h.task_ids::jsonb))) AS ids(a)
    ON CONFLICT (group_id) DO NOTHING
)
SELECT pg_notify(%(channel)s, q.queue)
FROM (SELECT DISTINCT queue FROM ins) AS q
WHERE CASE WHEN %(durable)s::bool THEN true
           ELSE set_config('synchronous_commit', 'off', true) IS NOT NULL END;

-- name: publish_one
-- publish for a single job (delay()): scalar parameters, no arrays to build or unnest.
-- Same rules: idempotent by task id, one NOTIFY, %(durable)s false commits asynchronously,
-- the place in the queue.
WITH ins AS (
    INSERT INTO {schema}.jobs (task_id, task_name, queue, priority, eta, expires, retries,
                               acks_late, reject_on_worker_lost, content_type, headers, body,
                               sort_key)
    SELECT %(task_id)s::text, %(task_name)s::text, %(queue)s::text, %(priority)s::smallint,
           coalesce(%(eta)s::timestamptz, now()), %(expires)s::timestamptz, %(retries)s::int,
           %(acks_late)s::bool, %(reject_on_worker_lost)s::bool, %(content_type)s::text,
           %(headers)s::jsonb, %(body)s::bytea,
           coalesce(%(eta)s::timestamptz, %(sort_key)s::timestamptz, now())
    WHERE NOT EXISTS (SELECT 1 FROM {schema}.results AS r WHERE r.task_id = %(task_id)s::text)
    ON CONFLICT DO NOTHING
    RETURNING queue
)
SELECT pg_notify(%(channel)s, ins.queue) FROM ins
WHERE CASE WHEN %(durable)s::bool THEN true
           ELSE set_config('synchronous_commit', 'off', true) IS NOT NULL END;

-- name: publish_batch
-- publish for many calls of one task with the same options (Task.delay_many): only the
-- id, headers and body vary per job; everything else is one scalar for the whole batch,
-- so the client builds and sends three arrays instead of twelve. Same rules as publish.
WITH ins AS (
    INSERT INTO {schema}.jobs (task_id, task_name, queue, priority, eta, expires, retries,
                               acks_late, reject_on_worker_lost, content_type, headers, body,
                               sort_key)
    SELECT t.task_id, %(task_name)s::text, %(queue)s::text, %(priority)s::smallint,
           coalesce(%(eta)s::timestamptz, now()), %(expires)s::timestamptz, 0,
           %(acks_late)s::bool, %(reject_on_worker_lost)s::bool, %(content_type)s::text,
           t.headers::jsonb, t.body, coalesce(%(eta)s::timestamptz, now())
    FROM unnest(%(task_ids)b::text[], %(headers)b::text[], %(bodies)b::bytea[])
         AS t(task_id, headers, body)
    WHERE NOT EXISTS (SELECT 1 FROM {schema}.results AS r WHERE r.task_id = t.task_id)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT pg_notify(%(channel)s, %(queue)s::text)
WHERE EXISTS (SELECT 1 FROM ins)
  AND CASE WHEN %(durable)s::bool THEN true
           ELSE set_config('synchronous_commit', 'off', true) IS NOT NULL END;

-- name: publish_copy
-- publish_batch's first try on celeriac's own connection (Task.delay_many with no eta): a
-- binary COPY, about a third cheaper per row than INSERT ... SELECT unnest. It cannot
-- skip an id that is already queued or has a result, so it only ever writes ids this
-- call has just made; a retry after a lost reply goes through publish_batch, which can.
-- eta and sort_key take their default (now()), as in publish_batch.
COPY {schema}.jobs (task_id, task_name, queue, priority, expires, acks_late,
                    reject_on_worker_lost, content_type, headers, body)
FROM STDIN (FORMAT BINARY);

-- name: publish_copy_notify
-- After publish_copy, in its transaction: wake the queue's workers; %(durable)s false
-- commits asynchronously, as in publish.
SELECT pg_notify(%(channel)s, %(queue)s::text)
WHERE CASE WHEN %(durable)s::bool THEN true
           ELSE set_config('synchronous_commit', 'off', true) IS NOT NULL END;

-- name: claim
-- Claim up to %(limit)s due jobs of one queue for a worker: highest priority first, then
-- the oldest place in the queue (sort_key: a workflow's later steps inherit its place, so
-- they go before later workflows' work). SKIP LOCKED: concurrent workers never wait on
-- each other's rows; the ORDER BY matches jobs_claim, so the scan stops after LIMIT
-- entries. The claim increments the fencing token (attempt) and says
-- whether the task was revoked (a primary-key probe), saving a round trip. A worker taken
-- for dead (its row stopped, its jobs rescued) claims nothing until it registers again:
-- whatever it claimed would be rescued from under it. The first %(start)s jobs (in claim
-- order) start now and get claimed_at; the rest are prefetched (worker/prefetch.py):
-- claimed_at stays NULL until they start, so a rescuer knows they never ran. The headers
-- come as JSON text and the time limits apart: the worker's parent reads only those, and
-- parsing every job's headers there cost 4 us a job (Job.headers parses them later).
-- A short claim (fewer than %(limit)s: the queue has nothing more due) also says when the
-- queue's earliest other job is due (the last column, ``later``; a lone all-NULL row when
-- nothing was claimed), so an idle worker learns how long it may sleep in the same round
-- trip (it was a next_eta query after every lone job). The jobs claimed show as still
-- queued in the statement's snapshot: they are left out.
WITH picked AS (
    SELECT id, priority, sort_key FROM {schema}.jobs
    WHERE state = 'queued' AND queue = %(queue)s AND eta <= now()
      AND NOT EXISTS (SELECT 1 FROM {schema}.workers AS w
                      WHERE w.id = %(worker_id)s AND w.stopped_at IS NOT NULL)
    ORDER BY priority DESC, sort_key, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), next AS (
    SELECT id, row_number() OVER (ORDER BY priority DESC, sort_key, id) AS rank FROM picked
), claimed AS (
    UPDATE {schema}.jobs AS j
    SET state = 'running', attempt = j.attempt + 1, worker_id = %(worker_id)s,
        claimed_at = CASE WHEN next.rank <= %(start)s THEN now() END
    FROM next
    WHERE j.id = next.id
    RETURNING j.id, j.attempt, j.task_id, j.task_name, j.queue, j.priority, j.eta, j.expires,
              j.retries, j.acks_late, j.reject_on_worker_lost, j.content_type,
              j.headers::text AS headers, j.body,
              EXISTS (SELECT 1 FROM {schema}.revoked AS r WHERE r.task_id = j.task_id) AS revoked,
              CASE WHEN jsonb_typeof(j.headers->'timelimit'->0) = 'number'
                   THEN (j.headers->'timelimit'->>0)::float8 END AS hard,
              CASE WHEN jsonb_typeof(j.headers->'timelimit'->1) = 'number'
                   THEN (j.headers->'timelimit'->>1)::float8 END AS soft,
              next.rank
)
SELECT c.*,
       CASE WHEN (SELECT count(*) FROM claimed) < %(limit)s
            THEN (SELECT min(q.eta) FROM {schema}.jobs AS q
                  WHERE q.state = 'queued' AND q.queue = %(queue)s
                    AND NOT EXISTS (SELECT 1 FROM picked AS p WHERE p.id = q.id)) END AS later
FROM (SELECT) AS one LEFT JOIN claimed AS c ON true;

-- name: running_of_worker
-- The jobs a worker holds. After a claim whose reply was lost with its connection (the
-- claim may have committed), the worker releases those it never received.
SELECT id, attempt, task_id, task_name FROM {schema}.jobs
WHERE worker_id = %(worker_id)s AND state = 'running';

-- name: mark_started
-- Prefetched jobs the worker has started since (written with its next batch of outcomes):
-- from now on a rescuer treats them as started. Fenced like every outcome. A job already
-- marked keeps its time (coalesce, not a ``claimed_at IS NULL`` test: without statistics
-- the planner took that as true of 0.5 % of the running jobs and joined them to the marks
-- in a nested loop, every mark read again per running job: 160,000 pairs, 30 ms, for 400
-- marks; a hash join 2 ms).
UPDATE {schema}.jobs AS j SET claimed_at = coalesce(j.claimed_at, now())
FROM unnest(%(job_ids)s::bigint[], %(attempts)s::int[]) AS s(job_id, attempt)
WHERE j.id = s.job_id AND j.attempt = s.attempt AND j.state = 'running';

-- name: unstarted
-- Which of these running jobs were prefetched and never started (claimed_at NULL).
SELECT id FROM {schema}.jobs WHERE id = ANY(%(job_ids)s) AND claimed_at IS NULL;

-- name: finish_outcomes
-- (A part of finish and finish_alone, not a statement.) The outcomes of a batch.
o AS (
    SELECT * FROM unnest(%(job_ids)s::bigint[], %(attempts)s::int[], %(statuses)s::text[],
                         %(content_types)s::text[], %(results)b::bytea[], %(tracebacks)s::text[],
                         %(stores)s::bool[], %(started)b::timestamptz[])
         AS o(job_id, attempt, status, content_type, result, traceback, store, date_started)
)

-- name: finish_jobs
-- (A part of finish, finish_alone and finish_one, not a statement.) The jobs the outcomes
-- (o) end: only rows whose fencing token still matches are deleted — a worker that lost
-- its claim cannot overwrite the attempt that replaced it. %(alone)s true leaves chord
-- and group members alone (finish_alone, finish_one). A group id is never empty: the
-- test is written ``> ''`` for the planner's sake. Without statistics on the expression
-- it took ``->> IS NOT NULL`` as true of 99.5 % of jobs, so "not a group member" matched
-- almost none, and it joined the running jobs to the batch's outcomes in a nested loop,
-- every outcome read again for every running job: 68 ms for 500 outcomes against 800
-- running jobs, a hash join 2 ms. Two solo workers draining 20,000 jobs fell from ~15,000
-- to ~4,500 tasks/s on it (finishes of 1,000 outcomes took 250-400 ms).
done AS (
    DELETE FROM {schema}.jobs j USING o
    WHERE j.id = o.job_id AND j.attempt = o.attempt AND j.state = 'running'
      AND NOT (%(alone)s::bool AND coalesce(j.headers->>'group', '') > '')
    RETURNING j.id, j.task_id, j.task_name, j.queue, j.retries, j.headers, j.content_type, j.body,
              j.sort_key
)

-- name: finish_saved
-- (A part of finish, finish_alone and finish_one, not a statement.) The results the ended
-- jobs leave.
saved AS (
    INSERT INTO {schema}.results AS r (task_id, status, content_type, result, traceback, name,
                                       request_type, request, worker, retries, queue, parent_id,
                                       root_id, group_id, date_started, date_done, expires_at)
    SELECT d.task_id, o.status, o.content_type, o.result, o.traceback, d.task_name,
           d.content_type, d.body, %(worker)s, d.retries, d.queue, d.headers->>'parent_id',
           d.headers->>'root_id', d.headers->>'group', o.date_started, now(),
           now() + %(expires)s::float8 * interval '1 s'
    FROM done d JOIN o ON o.job_id = d.id
    WHERE o.store
    ON CONFLICT (task_id) DO UPDATE SET
        status = excluded.status, content_type = excluded.content_type, result = excluded.result,
        traceback = excluded.traceback, name = excluded.name, request_type = excluded.request_type,
        request = excluded.request, worker = excluded.worker, retries = excluded.retries,
        queue = excluded.queue, parent_id = excluded.parent_id, root_id = excluded.root_id,
        group_id = excluded.group_id,
        date_started = coalesce(excluded.date_started, r.date_started),
        date_done = excluded.date_done, expires_at = excluded.expires_at
)

-- name: finish_steps
-- (A part of finish and finish_alone, not a statement.) What else the ended jobs leave:
-- the callbacks/errbacks they publish, inserted only for the jobs accepted, so a retried
-- write after a lost COMMIT reply can never publish them twice; the chords they start; a
-- NOTIFY waking the workers of the queues that got a job. What a job publishes inherits
-- its place in the queue (sort_key) unless due later.
children AS (
    INSERT INTO {schema}.jobs (task_id, task_name, queue, priority, eta, expires, retries,
                               acks_late, reject_on_worker_lost, content_type, headers, body,
                               sort_key)
    SELECT t.task_id, t.task_name, t.queue, t.priority, coalesce(t.eta, now()), t.expires,
           t.retries, t.acks_late, t.reject_on_worker_lost, t.content_type, t.headers::jsonb, t.body,
           coalesce(t.eta, d.sort_key)
    FROM unnest(%(c_parents)s::bigint[], %(c_task_ids)s::text[], %(c_task_names)s::text[],
                %(c_queues)s::text[], %(c_priorities)s::smallint[], %(c_etas)s::timestamptz[],
                %(c_expires)s::timestamptz[], %(c_retries)s::int[], %(c_acks_late)s::bool[],
                %(c_reject_on_worker_lost)s::bool[], %(c_content_types)s::text[],
                %(c_headers)s::text[], %(c_bodies)s::bytea[])
         AS t(parent, task_id, task_name, queue, priority, eta, expires, retries, acks_late,
              reject_on_worker_lost, content_type, headers, body)
    JOIN done d ON d.id = t.parent
    -- a task id still queued or running is not queued twice (jobs_task_id): e.g. one
    -- frozen errback linked to several tasks that fail together. The finishing job's own
    -- id is free (retry(throw=False), replace() reuse it): done has deleted it already,
    -- since this insert reads done.
    ON CONFLICT DO NOTHING
    RETURNING queue
), new_chords AS (
    INSERT INTO {schema}.chords (group_id, task_ids, remaining, content_type, body, sort_key)
    SELECT h.group_id, ids.a, cardinality(ids.a), h.content_type, h.body, d.sort_key
    FROM unnest(%(h_parents)s::bigint[], %(h_group_ids)s::text[], %(h_task_ids)s::text[],
                %(h_content_types)s::text[], %(h_bodies)s::bytea[])
         AS h(parent, group_id, task_ids, content_type, body)
    JOIN done d ON d.id = h.parent
    CROSS JOIN LATERAL (SELECT ARRAY(SELECT jsonb_array_elements_text(h.task_ids::jsonb))) AS ids(a)
    ON CONFLICT (group_id) DO NOTHING
), woken AS (
    SELECT pg_notify(%(channel)s, q.queue)
    FROM (SELECT DISTINCT queue FROM children) AS q
)

-- name: finish
-- Record the outcomes of finished jobs and delete them, in one statement, within the
-- transaction that also joins the chords it completes (Broker._commit_together). A
-- finished chord part decrements its chord's counter here, in the transaction that stores
-- its result; chords are locked in group_id order so concurrent batches never deadlock.
-- The results are announced on %(results_channel)s (%(announce)s: task ids joined by
-- commas, each payload under NOTIFY's 8000 bytes), so a waiting get() wakes at commit.
-- Returns the ids that were accepted, each with the chords that became complete.
WITH {block:finish_outcomes}, {block:finish_jobs}, {block:finish_saved}, {block:finish_steps},
told AS (
    SELECT pg_notify(%(results_channel)s, p) FROM unnest(%(announce)s::text[]) AS p
), parts AS (
    -- a task that replaced itself (Task.replace) is not counted: its replacement, which
    -- has its id and its chord membership, is counted when it ends
    SELECT d.headers->>'group' AS group_id, count(*)::int AS n
    FROM done d JOIN o ON o.job_id = d.id
    WHERE d.headers->>'group' IS NOT NULL AND o.status <> 'REPLACED'
    GROUP BY 1
), locked AS MATERIALIZED (
    SELECT c.group_id FROM {schema}.chords c
    WHERE c.group_id IN (SELECT group_id FROM parts)
    ORDER BY c.group_id
    FOR UPDATE
), joined AS (
    UPDATE {schema}.chords c SET remaining = c.remaining - p.n
    FROM locked l JOIN parts p USING (group_id)
    WHERE c.group_id = l.group_id
    RETURNING c.group_id, c.remaining
)
-- (CROSS JOINs on the NOTIFY counts: a LEFT JOIN whose columns are unused would be
-- removed by the planner, and the NOTIFY with it)
SELECT d.id, (SELECT array_agg(j.group_id) FROM joined j WHERE j.remaining <= 0), w.n
FROM done d
CROSS JOIN (SELECT (SELECT count(*) FROM woken) + (SELECT count(*) FROM told) AS n) AS w;

-- name: finish_alone
-- finish as a whole transaction of its own (autocommit, one round trip: Broker.commit's
-- usual case, %(alone)s true): it leaves chord and group members alone — a chord it
-- completed would have to be joined in the same transaction; the caller records those
-- apart. Besides the ids (%(announce)s, as finish), it announces small results whole on
-- %(values_channel)s: each of %(v_payloads)s when its job (%(v_jobs)s) is among those
-- accepted, so it says what was stored (backend.ResultListener: get() needs no read).
-- It also marks started the prefetched jobs that started since the last write
-- (%(s_jobs)s, fenced and written as mark_started): in a drain nearly every batch has
-- some, and they made it a pipelined BEGIN ... COMMIT of two statements. Returns the ids
-- accepted.
WITH {block:finish_outcomes}, {block:finish_jobs}, {block:finish_saved}, {block:finish_steps},
marked AS (
    UPDATE {schema}.jobs AS j SET claimed_at = coalesce(j.claimed_at, now())
    FROM unnest(%(s_jobs)s::bigint[], %(s_attempts)s::int[]) AS s(job_id, attempt)
    WHERE j.id = s.job_id AND j.attempt = s.attempt AND j.state = 'running'
      AND j.id NOT IN (SELECT job_id FROM o)
), told AS (
    SELECT pg_notify(%(results_channel)s, p) FROM unnest(%(announce)s::text[]) AS p
    UNION ALL
    SELECT pg_notify(%(values_channel)s, v.p)
    FROM unnest(%(v_jobs)s::bigint[], %(v_payloads)s::text[]) AS v(j, p)
    WHERE v.j IN (SELECT id FROM done)
)
SELECT d.id, w.n
FROM done d
CROSS JOIN (SELECT (SELECT count(*) FROM woken) + (SELECT count(*) FROM told) AS n) AS w;

-- name: finish_one
-- finish_alone for one outcome that publishes nothing (a lone job on an idle worker: the
-- delay().get() path): scalar parameters, no arrays to adapt and unnest, and nothing of
-- callbacks or chords. Same rules: fenced, chord and group members left alone, the
-- result announced (%(store)s) by id and, when %(v_payload)s is given, whole.
WITH o AS (
    SELECT %(job_id)s::bigint AS job_id, %(attempt)s::int AS attempt, %(status)s::text AS status,
           %(content_type)s::text AS content_type, %(result)b::bytea AS result,
           %(traceback)s::text AS traceback, %(store)s::bool AS store,
           %(started)s::timestamptz AS date_started
), {block:finish_jobs}, {block:finish_saved}, told AS (
    SELECT pg_notify(%(results_channel)s, %(task_id)s::text) WHERE %(store)s::bool
    UNION ALL
    SELECT pg_notify(%(values_channel)s, %(v_payload)s::text) WHERE %(v_payload)s::text IS NOT NULL
)
SELECT d.id, (SELECT count(*) FROM told) FROM done d;

-- name: retry
-- Put running jobs back in the queue, fenced like finish: for a later attempt (Task.retry,
-- storing RETRY with the exception in the same statement) or untouched (retry false: warm
-- shutdown, Reject(requeue=True), a lost child with reject_on_worker_lost).
WITH o AS (
    SELECT * FROM unnest(%(job_ids)s::bigint[], %(attempts)s::int[], %(etas)b::timestamptz[],
                         %(content_types)s::text[], %(results)b::bytea[], %(tracebacks)s::text[],
                         %(stores)s::bool[], %(bodies)b::bytea[], %(queues)s::text[],
                         %(retry)s::bool[])
         AS o(job_id, attempt, eta, content_type, result, traceback, store, body, queue, retry)
), moved AS (
    UPDATE {schema}.jobs AS j
    SET state = 'queued',
        eta = coalesce(o.eta, CASE WHEN o.retry THEN now() ELSE j.eta END),
        -- a retry (or a release with a new eta) takes its place at its eta, as Celery's
        -- re-published message does; a job released untouched keeps its place
        sort_key = CASE WHEN o.retry OR o.eta IS NOT NULL THEN coalesce(o.eta, now())
                        ELSE j.sort_key END,
        retries = j.retries + o.retry::int,
        worker_id = NULL, claimed_at = NULL, body = coalesce(o.body, j.body),
        queue = coalesce(o.queue, j.queue)
    FROM o
    WHERE j.id = o.job_id AND j.attempt = o.attempt AND j.state = 'running'
    RETURNING j.id, j.task_id, j.task_name, j.queue, j.retries, j.headers
), saved AS (
    INSERT INTO {schema}.results AS r (task_id, status, content_type, result, traceback, name,
                                       worker, retries, queue, parent_id, root_id, group_id,
                                       date_done, expires_at)
    SELECT m.task_id, 'RETRY', o.content_type, o.result, o.traceback, m.task_name, %(worker)s,
           m.retries, m.queue, m.headers->>'parent_id', m.headers->>'root_id', m.headers->>'group',
           now(), now() + make_interval(secs => %(expires)s::float8)
    FROM moved AS m JOIN o ON o.job_id = m.id
    WHERE o.store
    ON CONFLICT (task_id) DO UPDATE SET
        status = excluded.status, content_type = excluded.content_type, result = excluded.result,
        traceback = excluded.traceback, worker = excluded.worker, retries = excluded.retries,
        date_done = excluded.date_done, expires_at = excluded.expires_at
), woken AS (
    SELECT pg_notify(%(channel)s, q.queue)
    FROM (SELECT DISTINCT queue FROM moved) AS q
)
SELECT m.id, w.n FROM moved AS m CROSS JOIN (SELECT count(*) AS n FROM woken) AS w;

-- name: bury
-- Move a job that cannot be decoded aside (dead letter) with the reason; never drop it.
-- A buried chord part counts as ended (its FAILURE is stored with it), so its chord
-- is still joined — with a ChordError — instead of waiting forever. Returns the chord
-- that became complete, if any.
WITH dead AS (
    UPDATE {schema}.jobs SET state = 'dead', error = %(error)s, worker_id = NULL
    WHERE id = %(job_id)s AND attempt = %(attempt)s AND state = 'running'
    RETURNING headers->>'group' AS group_id
)
UPDATE {schema}.chords AS c SET remaining = c.remaining - 1
FROM dead WHERE c.group_id = dead.group_id
RETURNING c.group_id, c.remaining;

-- name: purge
-- Delete waiting jobs of the given queues (celeriac purge). Running jobs are untouched.
WITH gone AS (
    DELETE FROM {schema}.jobs WHERE state = 'queued' AND queue = ANY(%(queues)s) RETURNING 1
)
SELECT count(*) FROM gone;

-- name: queue_lengths
-- Waiting jobs per queue.
SELECT queue, count(*) FROM {schema}.jobs WHERE state = 'queued' GROUP BY queue ORDER BY queue;
