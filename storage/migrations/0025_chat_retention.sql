-- Retention (SWITCHBOARD_CHAT_RETENTION_DAYS) looks for chats idle since `updated_at`, whatever
-- their TTL: an index on all of them. It serves the default-TTL sweep too (its chats are those
-- without a TTL of their own, a filter on this range), so the partial index that sweep had
-- goes: one index to keep up on every run's end, not two.
CREATE INDEX chats_updated_idx ON chats (updated_at);
DROP INDEX chats_default_ttl_idx;
