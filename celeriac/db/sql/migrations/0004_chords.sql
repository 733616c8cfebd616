-- (numbered 0004: 0003 landed first; IF NOT EXISTS for schemas that applied it as 0002)
-- Chords joined in the database: one counter row per chord, created with the header's
-- messages and decremented in the transaction that records each header task's outcome.
CREATE TABLE IF NOT EXISTS {schema}.chords (
    group_id text PRIMARY KEY,
    -- the header's task ids in header order: the body gets their results in this order
    task_ids text[] NOT NULL,
    remaining integer NOT NULL,
    content_type text NOT NULL,
    -- the body signature, serialized with the task serializer
    body bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Chords whose header never completes are pruned by age.
CREATE INDEX IF NOT EXISTS chords_created ON {schema}.chords (created_at);
