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
    error text
);
-- Matches the claim's WHERE and ORDER BY exactly, so a claim reads LIMIT index entries.
CREATE INDEX jobs_claim ON {schema}.jobs (queue, priority DESC, eta, id) WHERE state = 'queued';
-- The rescuer looks up running jobs by worker.
CREATE INDEX jobs_running ON {schema}.jobs (worker_id) WHERE state = 'running';
-- Revoke and inspection find jobs by task id.
CREATE INDEX jobs_task_id ON {schema}.jobs (task_id);

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
