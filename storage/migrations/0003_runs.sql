-- Runs: one agent answer to one message. The event stream lives in the run's event log; this
-- row is the durable record (status, timings, usage, error).
CREATE TABLE runs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    chat_id uuid NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id uuid NOT NULL REFERENCES agents (id),
    agent_version integer NOT NULL,
    model_name text NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'success', 'error', 'cancelled', 'interrupted')),
    multitask_strategy text NOT NULL DEFAULT 'reject',
    error text,
    usage jsonb,
    worker_id text,
    heartbeat_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    ended_at timestamptz
);
CREATE INDEX runs_chat_idx ON runs (chat_id, created_at DESC);
-- One active run per chat, enforced by Postgres so it holds across processes.
CREATE UNIQUE INDEX runs_one_active_per_chat ON runs (chat_id)
    WHERE status IN ('pending', 'running');
