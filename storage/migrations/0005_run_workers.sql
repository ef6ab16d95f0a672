-- Runs that any process can execute: the message a queued run answers is stored with it, so a
-- `switchboard worker` that claims the run has everything it needs. A queued run with no
-- worker_id belongs to nobody yet (workers claim it); one with a worker_id waits in that process.
ALTER TABLE runs ADD COLUMN input jsonb;
CREATE INDEX runs_unclaimed_idx ON runs (created_at, id) WHERE status = 'pending' AND worker_id IS NULL;
