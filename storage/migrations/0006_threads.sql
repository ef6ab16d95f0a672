-- The Agent Protocol's threads are chats. A thread may be created before any agent runs on it
-- (the first run binds it), carries client metadata, and has a status between runs.
ALTER TABLE chats ALTER COLUMN agent_id DROP NOT NULL;
ALTER TABLE chats ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';
-- 'busy' is not stored: a thread is busy while it has an active run (the runs table says so).
ALTER TABLE chats ADD COLUMN thread_status text NOT NULL DEFAULT 'idle'
    CHECK (thread_status IN ('idle', 'interrupted', 'error'));
CREATE INDEX chats_metadata_idx ON chats USING gin (metadata jsonb_path_ops);
