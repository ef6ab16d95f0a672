"""MCP servers admins registered, and the tools each listed at its last refresh."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from storage.db import Conn
from storage.rows import McpServerRow

MCP_SERVER_COLUMNS = """
    id, name, transport, url, headers, command, args, env, tools, refreshed_at, created_by,
    created_at
"""
INSERT = f"""
INSERT INTO mcp_servers (name, transport, url, headers, command, args, env, created_by)
VALUES (%(name)s, %(transport)s, %(url)s, %(headers)s, %(command)s, %(args)s, %(env)s,
        %(created_by)s)
ON CONFLICT (name) DO NOTHING
RETURNING {MCP_SERVER_COLUMNS}
"""
SELECT_ONE = f"SELECT {MCP_SERVER_COLUMNS} FROM mcp_servers WHERE id = %s"
SELECT_ALL = f"SELECT {MCP_SERVER_COLUMNS} FROM mcp_servers ORDER BY name"
SELECT_NAMED = f"SELECT {MCP_SERVER_COLUMNS} FROM mcp_servers WHERE name = ANY(%s) ORDER BY name"
SET_TOOLS = f"""
UPDATE mcp_servers SET tools = %s, refreshed_at = now() WHERE id = %s
RETURNING {MCP_SERVER_COLUMNS}
"""
DELETE = "DELETE FROM mcp_servers WHERE id = %s"


async def insert(conn: Conn, fields: dict[str, Any]) -> McpServerRow | None:
    """The new server; ``None`` when its name is taken."""
    values = {
        **fields,
        "headers": Jsonb(fields.get("headers") or {}),
        "args": Jsonb(fields.get("args") or []),
        "env": Jsonb(fields.get("env") or {}),
    }
    cur = await conn.execute(INSERT, values)
    return cast(McpServerRow | None, await cur.fetchone())


async def get(conn: Conn, server_id: UUID) -> McpServerRow | None:
    cur = await conn.execute(SELECT_ONE, (server_id,))
    return cast(McpServerRow | None, await cur.fetchone())


async def list_all(conn: Conn) -> list[McpServerRow]:
    cur = await conn.execute(SELECT_ALL)
    return cast(list[McpServerRow], await cur.fetchall())


async def named(conn: Conn, names: Sequence[str]) -> list[McpServerRow]:
    """The servers among ``names`` that exist."""
    cur = await conn.execute(SELECT_NAMED, (list(names),))
    return cast(list[McpServerRow], await cur.fetchall())


async def set_tools(
    conn: Conn, server_id: UUID, tools: list[dict[str, Any]]
) -> McpServerRow | None:
    cur = await conn.execute(SET_TOOLS, (Jsonb(tools), server_id))
    return cast(McpServerRow | None, await cur.fetchone())


async def delete(conn: Conn, server_id: UUID) -> bool:
    cur = await conn.execute(DELETE, (server_id,))
    return cur.rowcount == 1
