-- A chat shared read-only with another registered user. The owner stays chats.user_id; a
-- share only ever grants reads. role is a column (not implied) so that a later role is a
-- new CHECK value, not a new table. Both sides cascade: deleting the chat or either account
-- ends the share.
CREATE TABLE chat_shares (
    chat_id uuid NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL DEFAULT 'viewer' CHECK (role IN ('viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, user_id)
);
-- "Shared with me": a viewer's shares, and the per-user cascade when an account goes.
CREATE INDEX chat_shares_user_idx ON chat_shares (user_id);

-- A chat's public read-only link: at most one per chat (a new link replaces the old one).
-- Only the SHA-256 of the token is kept, like refresh tokens. checkpoint_id is the thread's
-- checkpoint when the link was made, so the link shows that snapshot and never what came
-- after; null when the chat had no messages yet.
CREATE TABLE chat_share_links (
    chat_id uuid PRIMARY KEY REFERENCES chats (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    checkpoint_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
