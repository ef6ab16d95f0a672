-- Thread lifecycle: a thread (a chat, to either API) may carry a time to live. It counts from
-- the last time the chat changed (updated_at: created, patched, renamed, or a run on it ended),
-- so expires_at follows updated_at by a trigger, whichever statement moves it. A thread
-- without a ttl of its own follows the server's default (SWITCHBOARD_THREAD_TTL_MINUTES), which
-- the database does not know: the sweep asks for those by updated_at. pruned_at is when a
-- keep_latest sweep last pruned the thread: it is not pruned again until it changes.
ALTER TABLE chats
    ADD COLUMN ttl_minutes double precision CHECK (ttl_minutes >= 0),
    ADD COLUMN ttl_strategy text CHECK (ttl_strategy IN ('delete', 'keep_latest')),
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN pruned_at timestamptz;

CREATE FUNCTION chats_ttl_expiry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ttl_minutes IS NULL THEN
        NEW.expires_at := NULL;
    ELSE
        NEW.expires_at := NEW.updated_at + NEW.ttl_minutes * interval '1 minute';
    END IF;
    RETURN NEW;
END
$$;

-- Only when updated_at or the ttl is written: a sweep that sets pruned_at leaves it alone.
CREATE TRIGGER chats_ttl_expiry BEFORE INSERT OR UPDATE OF updated_at, ttl_minutes ON chats
    FOR EACH ROW EXECUTE FUNCTION chats_ttl_expiry();

-- The sweep's two looks: threads with a ttl of their own, by when they expire; the others, by
-- when they last changed (the default applies to them).
CREATE INDEX chats_expires_idx ON chats (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX chats_default_ttl_idx ON chats (updated_at) WHERE ttl_minutes IS NULL;
