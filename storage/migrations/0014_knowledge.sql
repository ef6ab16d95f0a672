-- Knowledge (issue 14): documents of an agent (its knowledge base, written by admins) or of a
-- chat (files its owner attached), split into chunks with an embedding each and a full-text
-- vector. pgvector ships with the embedded Postgres.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE knowledge_documents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Exactly one of the two: an agent's document or a chat's file. Deleting either (an agent
    -- is only retired, which deletes its documents in code) deletes the document.
    agent_id uuid REFERENCES agents (id) ON DELETE CASCADE,
    chat_id uuid REFERENCES chats (id) ON DELETE CASCADE,
    -- Who uploaded it. A chat's file goes with its chat (and the chat with its owner); an
    -- agent's document outlives the admin who uploaded it.
    user_id uuid REFERENCES users (id) ON DELETE SET NULL,
    title text NOT NULL,
    filename text,
    media_type text NOT NULL,
    bytes bigint NOT NULL CHECK (bytes >= 0),
    -- SHA-256 of the extracted text: the same content uploaded twice is one document.
    content_hash bytea NOT NULL,
    -- The extracted text, so that a restart or a change of embedding model can index it again.
    text text NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'indexing', 'indexed', 'failed')),
    error text,
    chunk_count integer NOT NULL DEFAULT 0,
    -- The embedding model its chunks were made with (null until first indexed).
    embedding_model text,
    -- The process indexing it, and when it last said so: a stale claim is taken over.
    worker_id text,
    heartbeat_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    indexed_at timestamptz,
    CHECK ((agent_id IS NULL) <> (chat_id IS NULL))
);
CREATE UNIQUE INDEX knowledge_documents_agent_hash_key
    ON knowledge_documents (agent_id, content_hash) WHERE agent_id IS NOT NULL;
CREATE UNIQUE INDEX knowledge_documents_chat_hash_key
    ON knowledge_documents (chat_id, content_hash) WHERE chat_id IS NOT NULL;
CREATE INDEX knowledge_documents_agent_idx
    ON knowledge_documents (agent_id, created_at) WHERE agent_id IS NOT NULL;
CREATE INDEX knowledge_documents_chat_idx
    ON knowledge_documents (chat_id, created_at) WHERE chat_id IS NOT NULL;
CREATE INDEX knowledge_documents_user_idx ON knowledge_documents (user_id);
-- What the indexer looks for: documents not indexed (or being indexed) yet.
CREATE INDEX knowledge_documents_work_idx
    ON knowledge_documents (created_at) WHERE status IN ('pending', 'indexing');

CREATE TABLE knowledge_chunks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id uuid NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    -- The document's, copied so that a search filters chunks without a join.
    agent_id uuid REFERENCES agents (id) ON DELETE CASCADE,
    chat_id uuid REFERENCES chats (id) ON DELETE CASCADE,
    position integer NOT NULL,
    text text NOT NULL,
    -- No fixed dimension: the model may change. Searches cast to the model's dimension, and an
    -- HNSW index per model (made by the indexer when a model is first used, where enabled)
    -- serves that cast. halfvec, not vector: the embedded server's pgvector build dies on an
    -- illegal instruction computing any vector distance of 8 or more dimensions on CPUs without
    -- AVX-512, while its halfvec distances work (half precision is plenty for retrieval).
    embedding halfvec NOT NULL,
    embedding_model text NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
    UNIQUE (document_id, position),
    CHECK ((agent_id IS NULL) <> (chat_id IS NULL))
);
CREATE INDEX knowledge_chunks_tsv_idx ON knowledge_chunks USING gin (tsv);
CREATE INDEX knowledge_chunks_agent_idx
    ON knowledge_chunks (agent_id, embedding_model) WHERE agent_id IS NOT NULL;
CREATE INDEX knowledge_chunks_chat_idx
    ON knowledge_chunks (chat_id, embedding_model) WHERE chat_id IS NOT NULL;
