-- Operations: remote-control replies, periodic task schedule and tick records.

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
