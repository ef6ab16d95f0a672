-- A chat's file may be an image: its bytes, which a message shows the model by the file's id
-- (`{type: "image", file_id}`). An image has no text to index: it is stored `indexed`, with no
-- chunks and no embedding model, and the indexer never claims it. Agents' knowledge holds
-- documents only.
ALTER TABLE knowledge_documents ADD COLUMN image bytea;
ALTER TABLE knowledge_documents
    ADD CONSTRAINT knowledge_documents_image_in_chat CHECK (image IS NULL OR chat_id IS NOT NULL);
