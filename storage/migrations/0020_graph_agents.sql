-- Graphs from langgraph.json served as agents (graphs/custom.py): `kind` tells them from the
-- agents the server builds from their definition. A graph agent's slug is its graph id; its
-- prompt, model and tools are the graph's own business, so those columns stay empty.
ALTER TABLE agents ADD COLUMN kind text NOT NULL DEFAULT 'agent' CHECK (kind IN ('agent', 'graph'));
