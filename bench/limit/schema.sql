-- The minimal tables a PostgreSQL job queue needs, for pgbench (bench/limit.py).
DROP TABLE IF EXISTS jobs, results;
CREATE TABLE jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue text NOT NULL DEFAULT 'celery',
    state text NOT NULL DEFAULT 'queued',
    eta timestamptz NOT NULL DEFAULT now(),
    body bytea NOT NULL
);
CREATE INDEX jobs_claim ON jobs (queue, eta, id) WHERE state = 'queued';
CREATE TABLE results (
    task_id bigint PRIMARY KEY,
    status text NOT NULL,
    result bytea,
    date_done timestamptz NOT NULL DEFAULT now()
);
