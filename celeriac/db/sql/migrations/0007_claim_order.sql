-- Claim order: older workflows first. A job's place in its queue is sort_key: its eta for
-- a job published on its own, and its workflow's place for the callbacks, chain steps and
-- chord bodies a finished job publishes, so a request's last step does not queue behind
-- later requests' work. The claim orders by (priority DESC, sort_key, id); the index
-- matches that exactly. Chords keep their workflow's place for their body.
ALTER TABLE {schema}.jobs ADD COLUMN sort_key timestamptz NOT NULL DEFAULT now();
UPDATE {schema}.jobs SET sort_key = eta;
ALTER TABLE {schema}.chords ADD COLUMN sort_key timestamptz NOT NULL DEFAULT now();
UPDATE {schema}.chords SET sort_key = created_at;
DROP INDEX {schema}.jobs_claim;
CREATE INDEX jobs_claim ON {schema}.jobs (queue, priority DESC, sort_key, id)
    WHERE state = 'queued';
