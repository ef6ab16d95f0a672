-- Replays: a chat's user messages sent again, in order, to a new chat (same user; another agent,
-- or the same agent on another model), one ordinary run per message, driven by a background
-- task of one API process (worker_id, heartbeat_at: a replay whose process died is resumed by
-- another). source_chat_id: the replay is a comparison against that chat and goes with it.
-- target_chat_id: deleting the replay's chat keeps the report (its turns hold both answers).
CREATE TABLE replays (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source_chat_id uuid NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    target_chat_id uuid REFERENCES chats (id) ON DELETE SET NULL,
    agent_id uuid NOT NULL REFERENCES agents (id),
    -- The model the runs use instead of the agent's own; null: the agent's.
    model_name text,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
    total integer NOT NULL,
    done integer NOT NULL DEFAULT 0,
    error text,
    worker_id text,
    heartbeat_at timestamptz,
    -- Resumptions after a crash since the last turn that ended; past a few, it is interrupted.
    resumes integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    ended_at timestamptz
);
CREATE INDEX replays_source_idx ON replays (source_chat_id, created_at DESC);
CREATE INDEX replays_active_idx ON replays (worker_id) WHERE status IN ('pending', 'running');

-- One row per user message of the original: what was asked and answered then (original), and
-- the run that asks it again with what it answered (answer) once it ends.
CREATE TABLE replay_turns (
    replay_id uuid NOT NULL REFERENCES replays (id) ON DELETE CASCADE,
    position integer NOT NULL,
    message_id text NOT NULL,
    content text NOT NULL,
    original jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'success', 'error', 'cancelled', 'interrupted')),
    run_id uuid REFERENCES runs (id) ON DELETE SET NULL,
    answer jsonb,
    similarity double precision,
    started_at timestamptz,
    ended_at timestamptz,
    PRIMARY KEY (replay_id, position)
);
