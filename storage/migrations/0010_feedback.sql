-- A user's vote on one agent message of their chat: -1, 0 or 1 and a comment. The message
-- lives in the chat's thread, so it is named by id; agent_version is that of the run that
-- wrote it, for the per-version summary admins read.
CREATE TABLE message_feedback (
    chat_id uuid NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    message_id text NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id uuid REFERENCES agents (id),
    agent_version integer,
    score smallint NOT NULL CHECK (score IN (-1, 0, 1)),
    comment text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, message_id)
);
CREATE INDEX message_feedback_agent_idx ON message_feedback (agent_id, agent_version);
