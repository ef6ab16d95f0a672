-- A replayed user message with images: its content blocks (text and images, as the model read
-- them), sent again as they were; null for a message of text only (``content`` is its text).
ALTER TABLE replay_turns ADD COLUMN parts jsonb;
