-- Queued runs (multitask strategy "enqueue") wait as 'pending'; only one run per chat may be
-- 'running', still enforced by Postgres.
DROP INDEX runs_one_active_per_chat;
CREATE UNIQUE INDEX runs_one_running_per_chat ON runs (chat_id) WHERE status = 'running';
CREATE INDEX runs_pending_idx ON runs (chat_id, created_at, id) WHERE status = 'pending';
