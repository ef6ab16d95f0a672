-- Agent versions: every definition an agent has had, one row per version, written in the same
-- statement as the create or update that made it current. History is never rewritten: restoring
-- version n copies its definition into a new version. Retiring an agent bumps its version
-- without changing its definition, so that version has no row. Existing agents get their
-- current definition as their only known version.
CREATE TABLE agent_versions (
    agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    version integer NOT NULL,
    name text NOT NULL,
    description text NOT NULL,
    system_prompt text NOT NULL,
    avatar_url text,
    model_name text,
    tools_enabled jsonb NOT NULL,
    tools_requiring_approval jsonb NOT NULL,
    interest_area_ids uuid[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, version)
);

INSERT INTO agent_versions (agent_id, version, name, description, system_prompt, avatar_url,
                            model_name, tools_enabled, tools_requiring_approval,
                            interest_area_ids, created_at)
SELECT id, version, name, description, system_prompt, avatar_url, model_name, tools_enabled,
       tools_requiring_approval, interest_area_ids, updated_at
FROM agents;
