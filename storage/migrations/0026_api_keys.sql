-- Long-lived credentials for services (issue 18): a key authenticates as its user, in the
-- user's scope, or as an administrator only when made with admin = true by an administrator.
-- Only the SHA-256 of the key is kept (the key has 256 random bits: no slow hash is needed,
-- and it is checked on every request); prefix is its first characters, shown to tell keys
-- apart. A revoked key keeps its row (revoked_at), so using it says "revoked", not "unknown".
-- Deleting the account deletes its keys.
CREATE TABLE api_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name text NOT NULL,
    prefix text NOT NULL,
    key_hash bytea NOT NULL UNIQUE,
    admin boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at timestamptz,
    revoked_at timestamptz
);
-- A user's keys, newest first; and the per-user cascade when an account goes.
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at);
