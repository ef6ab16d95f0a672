-- MCP servers an admin registered (Switchboard as an MCP client): how to reach each one
-- (streamable HTTP: url and headers; stdio: command, args, env) and the tools it listed at its
-- last refresh. Agents name those tools "mcp:<name>/<tool>"; a graph is built from the stored
-- list (their schemas), and each call goes to the server at call time. headers and env may hold
-- secrets: the API shows their names only.
CREATE TABLE mcp_servers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE,
    transport text NOT NULL CHECK (transport IN ('streamable_http', 'stdio')),
    url text,
    headers jsonb NOT NULL DEFAULT '{}',
    command text,
    args jsonb NOT NULL DEFAULT '[]',
    env jsonb NOT NULL DEFAULT '{}',
    -- [{name, description, input_schema}] as of refreshed_at; null: never refreshed.
    tools jsonb,
    refreshed_at timestamptz,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((transport = 'streamable_http') = (url IS NOT NULL)),
    CHECK ((transport = 'stdio') = (command IS NOT NULL))
);
