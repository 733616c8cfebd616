-- celeriac schema: the canonical, current form. A test applies sql/migrations/ in order
-- and checks the result equals this. {schema} is the configured schema (an identifier).

-- The queue. Rows live here only while a job waits or runs: finished jobs are deleted in
-- the transaction that stores their result, so the hot table stays small.
CREATE TABLE {schema}.jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id text NOT NULL,
    task_name text NOT NULL,
    queue text NOT NULL,
    priority smallint NOT NULL DEFAULT 0,
    state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'dead')),
    eta timestamptz NOT NULL DEFAULT now(),
    expires timestamptz,
    retries integer NOT NULL DEFAULT 0,
    -- the fencing token: incremented by every claim; a completion must quote it
    attempt integer NOT NULL DEFAULT 0,
    acks_late boolean NOT NULL DEFAULT false,
    reject_on_worker_lost boolean NOT NULL DEFAULT false,
    worker_id bigint,
    claimed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    content_type text NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}',
    body bytea NOT NULL,
    error text,
    -- the job's place in its queue (claim order after priority): its eta when published
    -- on its own; the callbacks, chain steps and chord bodies a finished job publishes
    -- inherit its place, so a workflow's later steps go before later workflows' work
    sort_key timestamptz NOT NULL DEFAULT now()
);
-- Matches the claim's WHERE and ORDER BY exactly, so a claim reads LIMIT index entries
-- (a job due later has sort_key = eta, so not-yet-due jobs sit after the due ones).
CREATE INDEX jobs_claim ON {schema}.jobs (queue, priority DESC, sort_key, id)
    WHERE state = 'queued';
-- The rescuer looks up running jobs by worker.
CREATE INDEX jobs_running ON {schema}.jobs (worker_id) WHERE state = 'running';
-- Revoke and inspection find jobs by task id; unique among live jobs, so publishing is
-- idempotent by task id (publish: ON CONFLICT DO NOTHING; a retry never queues twice).
CREATE UNIQUE INDEX jobs_task_id ON {schema}.jobs (task_id) WHERE state <> 'dead';

-- Task results and states (Celery's result backend). PENDING is never stored.
CREATE TABLE {schema}.results (
    task_id text PRIMARY KEY,
    status text NOT NULL,
    content_type text NOT NULL,
    result bytea,
    traceback text,
    name text,
    request_type text,
    request bytea,
    worker text,
    retries integer,
    queue text,
    parent_id text,
    root_id text,
    group_id text,
    date_started timestamptz,
    date_done timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);
-- Pruning deletes expired results in batches through this index.
CREATE INDEX results_expires ON {schema}.results (expires_at) WHERE expires_at IS NOT NULL;

-- Workers register here; a live worker holds a session advisory lock keyed by its id,
-- so its death is seen the moment its connection closes.
CREATE TABLE {schema}.workers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    hostname text NOT NULL,
    pid integer NOT NULL,
    pool text NOT NULL,
    concurrency integer NOT NULL,
    queues text[] NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz,
    info jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX workers_name ON {schema}.workers (name) WHERE stopped_at IS NULL;

-- Revoked task ids, durable: a worker started later still won't run them.
CREATE TABLE {schema}.revoked (
    task_id text PRIMARY KEY,
    revoked_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    terminate boolean NOT NULL DEFAULT false,
    signal text
);

-- Saved GroupResults (GroupResult.save / restore).
CREATE TABLE {schema}.groups (
    group_id text PRIMARY KEY,
    task_ids text[] NOT NULL,
    date_done timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);

-- Replies to remote-control commands (inspect/control): each worker inserts one row per
-- request it answers and NOTIFYs the client, which reads and deletes its rows.
CREATE TABLE {schema}.control_replies (
    request_id text NOT NULL,
    node text NOT NULL,
    reply json NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, node)
);

-- Periodic tasks (beat): entries from beat_schedule (source 'config') and entries stored
-- at run time (source 'db'); the schedule state lives here, shared by every beat.
CREATE TABLE {schema}.periodic_tasks (
    name text PRIMARY KEY,
    task text NOT NULL,
    schedule jsonb NOT NULL,
    args jsonb NOT NULL DEFAULT '[]',
    kwargs jsonb NOT NULL DEFAULT '{}',
    options jsonb NOT NULL DEFAULT '{}',
    enabled boolean NOT NULL DEFAULT true,
    source text NOT NULL DEFAULT 'db' CHECK (source IN ('config', 'db')),
    last_run_at timestamptz,
    total_run_count integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per published tick, inserted in the publishing transaction: the primary key
-- makes a tick publish at most once however many beats compute it.
CREATE TABLE {schema}.periodic_ticks (
    name text NOT NULL,
    run_at timestamptz NOT NULL,
    task_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, run_at)
);

-- Chords joined in the database: one counter row per chord, created with the header's
-- messages and decremented in the transaction that records each header task's outcome.
CREATE TABLE {schema}.chords (
    group_id text PRIMARY KEY,
    -- the header's task ids in header order: the body gets their results in this order
    task_ids text[] NOT NULL,
    remaining integer NOT NULL,
    content_type text NOT NULL,
    -- the body signature, serialized with the task serializer
    body bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- the workflow's place in the queue (jobs.sort_key), inherited by the body
    sort_key timestamptz NOT NULL DEFAULT now()
);
-- Chords whose header never completes are pruned by age.
CREATE INDEX chords_created ON {schema}.chords (created_at);

-- Task events (worker -E): monitoring history, pruned after a day by the recorders.
CREATE TABLE {schema}.events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type text NOT NULL,
    task_id text,
    hostname text,
    "timestamp" timestamptz NOT NULL DEFAULT now(),
    fields jsonb NOT NULL DEFAULT '{}'
);
-- A task's history, and the recent events a monitor follows.
CREATE INDEX events_task_id ON {schema}.events (task_id);
CREATE INDEX events_timestamp ON {schema}.events ("timestamp");
