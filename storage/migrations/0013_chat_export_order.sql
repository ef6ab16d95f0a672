-- GET /chats/export pages through a user's chats oldest first by (created_at, id): each page
-- starts where the last ended, read from this index instead of sorting all of the user's chats.
CREATE INDEX chats_user_created_idx ON chats (user_id, created_at, id);
