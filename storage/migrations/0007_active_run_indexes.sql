-- Every process looks at the active runs on every heartbeat (runs.ACTIVE_ON_HOST,
-- runs.INTERRUPT_STALE) and every message asks whether its chat has one. Without an index on
-- active runs each of those read the whole runs table, a cost that grew with every finished
-- run. Active runs are a handful at any time: a partial index keeps these reads that small.
-- text_pattern_ops lets ACTIVE_ON_HOST's `worker_id LIKE 'host:%'` be a range scan.
CREATE INDEX runs_active_idx ON runs (worker_id text_pattern_ops)
    WHERE status IN ('pending', 'running');
CREATE INDEX runs_active_chat_idx ON runs (chat_id) WHERE status IN ('pending', 'running');
-- needs_closing (on every message) reads the chat's last ended run: one probe of this index
-- instead of sorting every run the chat ever had.
CREATE INDEX runs_chat_ended_idx ON runs (chat_id, ended_at DESC) WHERE ended_at IS NOT NULL;
