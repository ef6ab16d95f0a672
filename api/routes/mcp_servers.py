"""``/mcp-servers``: the MCP servers whose tools agents may enable (admins only)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Body, Response, status

from api.deps import AdminUser, Pool, SettingsDep
from api.openapi import errors
from api.schemas.mcp_servers import McpServerCreate, McpServerOut
from api.services import mcp_servers as service

router = APIRouter(prefix="/mcp-servers", tags=["mcp-servers"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=McpServerOut, responses=errors(409)
)
async def register(
    admin: AdminUser, pool: Pool, settings: SettingsDep, body: McpServerCreate = Body()
) -> dict[str, Any]:
    """Register an MCP server (streamable HTTP or stdio). Its tools are listed by
    `POST /mcp-servers/{id}/refresh`; nothing is asked of it until then."""
    async with pool.connection() as conn:
        row = await service.create(conn, settings, body, admin["id"])
    return service.server_out(row)


@router.get("", response_model=list[McpServerOut])
async def list_servers(_: AdminUser, pool: Pool) -> list[dict[str, Any]]:
    """The registered MCP servers, by name (header and environment values are not shown)."""
    async with pool.connection() as conn:
        return [service.server_out(r) for r in await service.list_all(conn)]


@router.get("/{server_id}", response_model=McpServerOut)
async def get_server(server_id: UUID, _: AdminUser, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        return service.server_out(await service.get(conn, server_id))


@router.post("/{server_id}/refresh", response_model=McpServerOut, responses=errors(502))
async def refresh_server(server_id: UUID, _: AdminUser, pool: Pool) -> dict[str, Any]:
    """Ask the server for its tools now and keep the list agents choose from (a 502
    `mcp_server_unavailable` when it cannot be asked; the previous list stays)."""
    async with pool.connection() as conn:
        row = await service.get(conn, server_id)
    tools = await service.listed_tools(row)
    async with pool.connection() as conn:
        return service.server_out(await service.keep_tools(conn, server_id, tools))


@router.delete("/{server_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_server(server_id: UUID, _: AdminUser, pool: Pool) -> Response:
    """Remove the server: agents that enable its tools run without them."""
    async with pool.connection() as conn:
        await service.delete(conn, server_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
