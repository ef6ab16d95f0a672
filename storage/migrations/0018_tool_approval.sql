-- Approval of tool calls (graphs/approval.py): the enabled tools whose every call waits for a
-- person's decision (approve, edit or reject) before it runs. Names, in the agent's order; a
-- subset of tools_enabled, which the API checks.
ALTER TABLE agents ADD COLUMN tools_requiring_approval jsonb NOT NULL DEFAULT '[]'::jsonb;
