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
