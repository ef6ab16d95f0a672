-- The memory store (LangGraph's store_vectors, created after our migrations by its own setup):
-- which embedding model made its vectors, and the vectors to make again after a change of model.

-- One row: the model (as its embedder names itself) and the dimension of every vector in
-- store_vectors. Written by storage.store.setup at start, under the store's advisory lock.
CREATE TABLE store_embedding_model (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    model text NOT NULL,
    dims integer NOT NULL CHECK (dims > 0),
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- The vectors a change of model deleted, each to be made again from its item's value with the
-- model in use (api/services/store_reindexer.py). No foreign key to store: that table may not
-- exist yet, and an item deleted meanwhile is simply skipped.
CREATE TABLE store_reindex (
    prefix text NOT NULL,
    key text NOT NULL,
    field_name text NOT NULL,
    PRIMARY KEY (prefix, key, field_name)
);
-- Whether a namespace (and those below it) still has vectors to remake: equality and LIKE
-- 'prefix.%', as on store's own prefix index.
CREATE INDEX store_reindex_prefix_idx ON store_reindex (prefix text_pattern_ops);
