"""MCP servers: admins register them, refresh their tool lists, and remove them."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from api.errors import AppError, Conflict, InvalidInput, NotFound
from api.schemas.mcp_servers import HttpServerCreate, StdioServerCreate
from api.settings import Settings
from storage import mcp_servers as store
from storage.db import Conn
from storage.rows import McpServerRow
from tools import mcp, net_guard

URL_NOT_ALLOWED = "mcp_url_not_allowed"
COMMAND_NOT_ALLOWED = "mcp_command_not_allowed"


class ServerUnavailable(AppError):
    status_code = 502
    code = "mcp_server_unavailable"
    detail = "The MCP server could not be asked"


def server_out(row: McpServerRow) -> dict[str, Any]:
    """What the API shows of a server: header and environment *names* only."""
    tools = row["tools"]
    return {
        "id": row["id"],
        "name": row["name"],
        "transport": row["transport"],
        "url": row["url"],
        "header_names": sorted(row["headers"]),
        "command": row["command"],
        "args": row["args"],
        "env_names": sorted(row["env"]),
        "tools": None
        if tools is None
        else [{**t, "enable_as": mcp.qualified(row["name"], t["name"])} for t in tools],
        "refreshed_at": row["refreshed_at"],
        "created_at": row["created_at"],
    }


async def _check_url(settings: Settings, url: str) -> None:
    try:
        async with asyncio.timeout(settings.mcp_timeout_seconds):
            await net_guard.check(url, allowed_hosts=settings.mcp_allowed_hosts)
    except TimeoutError:
        raise InvalidInput(
            "This MCP server URL is not allowed: its host did not resolve in time",
            code=URL_NOT_ALLOWED,
        ) from None
    except net_guard.Refused as refused:
        raise InvalidInput(
            f"This MCP server URL is not allowed: {refused.reason}", code=URL_NOT_ALLOWED
        ) from None


async def create(
    conn: Conn, settings: Settings, dto: HttpServerCreate | StdioServerCreate, admin_id: UUID
) -> McpServerRow:
    fields: dict[str, Any] = {
        "name": dto.name, "transport": dto.transport, "url": None, "headers": {},
        "command": None, "args": [], "env": {}, "created_by": admin_id,
    }  # fmt: skip
    if isinstance(dto, HttpServerCreate):
        await _check_url(settings, dto.url)
        fields.update(url=dto.url, headers=dto.headers)
    else:
        if dto.command not in settings.mcp_stdio_commands:
            raise InvalidInput(
                "This command is not one MCP servers may run here (SWITCHBOARD_MCP_STDIO_COMMANDS)",
                code=COMMAND_NOT_ALLOWED,
            )
        fields.update(command=dto.command, args=dto.args, env=dto.env)
    row = await store.insert(conn, fields)
    if row is None:
        raise Conflict("An MCP server with this name exists", code="mcp_server_exists")
    return row


async def get(conn: Conn, server_id: UUID) -> McpServerRow:
    row = await store.get(conn, server_id)
    if row is None:
        raise NotFound("MCP server not found")
    return row


async def list_all(conn: Conn) -> list[McpServerRow]:
    return await store.list_all(conn)


async def listed_tools(row: McpServerRow) -> list[dict[str, Any]]:
    """The tools the server lists now; a 502 when it cannot be asked. Called without a
    connection held: the server may take its time."""
    try:
        return await mcp.list_tools(row)
    except mcp.Unavailable as exc:
        raise ServerUnavailable(
            f"The MCP server {row['name']} could not be asked for its tools: {exc.reason}"
        ) from None


async def keep_tools(conn: Conn, server_id: UUID, tools: list[dict[str, Any]]) -> McpServerRow:
    updated = await store.set_tools(conn, server_id, tools)
    if updated is None:
        raise NotFound("MCP server not found")
    return updated


async def delete(conn: Conn, server_id: UUID) -> None:
    """Remove the server; agents that enable its tools run without them."""
    if not await store.delete(conn, server_id):
        raise NotFound("MCP server not found")


async def catalog(conn: Conn) -> list[McpServerRow]:
    """Every server with a refreshed tool list (for ``GET /tools``)."""
    return [row for row in await store.list_all(conn) if row["tools"] is not None]
