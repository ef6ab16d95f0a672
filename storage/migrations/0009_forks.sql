-- Where a chat was forked from: {chat_id, checkpoint_id, message_id?}; null for every other
-- chat. Not a foreign key: a fork outlives the deletion of its original.
ALTER TABLE chats ADD COLUMN forked_from jsonb;
