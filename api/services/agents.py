"""Agent definitions: validation against the model and tool registries, and admin writes."""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Final
from uuid import UUID

import psycopg

from api.errors import Conflict, InvalidInput, NotFound
from api.schemas.agents import AgentCreate, AgentUpdate
from api.schemas.protocol import AssistantSearch
from api.services.profiles import check_areas
from graphs.models import parse_model_name
from storage import agents as agents_store
from storage import knowledge as knowledge_store
from storage import mcp_servers as mcp_servers_store
from storage.db import Conn
from storage.rows import AgentRow, AgentVersionRow
from tools import TOOLS, mcp


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:60].rstrip("-") or "agent"


def agent_out(row: AgentRow) -> dict[str, Any]:
    keys: Final = (
        "id", "slug", "name", "description", "system_prompt", "avatar_url", "model_name",
        "tools_enabled", "tools_requiring_approval", "interest_area_ids", "kind", "version",
        "created_at", "updated_at",
    )  # fmt: skip
    return {k: row[k] for k in keys}


async def _validate(conn: Conn, fields: dict[str, Any]) -> None:
    model_name = fields.get("model_name")
    if model_name is not None:
        parse_model_name(model_name)  # UnknownModel: a 422 (api/errors.py)
    enabled = fields.get("tools_enabled") or []
    gated = fields.get("tools_requiring_approval") or []
    named = [*enabled, *gated]
    unknown_tools = list(dict.fromkeys(t for t in named if t not in TOOLS))
    unknown_plain = [t for t in unknown_tools if mcp.split(t) is None]
    if unknown_plain:
        known = ", ".join(sorted(TOOLS)) or "none"
        raise InvalidInput(f"Unknown tool(s): {', '.join(unknown_plain)}; available: {known}")
    unknown_mcp = await _unknown_mcp(conn, unknown_tools)
    if unknown_mcp:
        # A name that names nothing (now): a 404 with a code of its own, like an interest area.
        raise NotFound(
            f"No registered MCP server listed these tools at its last refresh: "
            f"{', '.join(unknown_mcp)}",
            code="mcp_tool_not_found",
        )
    await check_areas(conn, fields.get("interest_area_ids") or [])


async def _unknown_mcp(conn: Conn, names: list[str]) -> list[str]:
    """``names`` without the MCP tools that their servers listed at their last refresh."""
    servers = {split[0] for name in names if (split := mcp.split(name))}
    if not servers:
        return names
    rows = await mcp_servers_store.named(conn, sorted(servers))
    listed = {
        mcp.qualified(row["name"], tool["name"]) for row in rows for tool in row["tools"] or []
    }
    return [name for name in names if name not in listed]


def _columns(dto: AgentCreate | AgentUpdate, fields: set[str]) -> dict[str, Any]:
    values = dto.model_dump(include=fields)
    if values.get("avatar_url") is not None:
        values["avatar_url"] = str(getattr(dto, "avatar_url"))  # noqa: B009
    return values


async def create(conn: Conn, dto: AgentCreate, created_by: UUID) -> AgentRow:
    fields = _columns(dto, set(AgentCreate.model_fields))
    await _validate(conn, fields)
    fields["created_by"] = created_by
    # Two admins creating same-named agents at once can race for a slug; the loser retries.
    for _ in range(5):
        try:
            async with conn.transaction():
                fields["slug"] = await agents_store.free_slug(conn, slugify(dto.name))
                return await agents_store.insert(conn, fields)
        except psycopg.errors.UniqueViolation:
            continue
    raise Conflict("Could not allocate a unique slug for this agent; try again")


async def update(conn: Conn, agent_id: UUID, dto: AgentUpdate) -> AgentRow:
    fields = _columns(dto, dto.model_fields_set)
    await _validate(conn, fields)
    row = await agents_store.update(conn, agent_id, fields)
    if row is None:
        raise NotFound("Agent not found")
    return row


VERSION_NOT_FOUND = "Agent version not found"


async def versions_page(
    conn: Conn, agent_id: UUID, *, limit: int, offset: int
) -> tuple[list[AgentVersionRow], int]:
    """A live agent's recorded definitions, newest first, and how many there are; 404 for an
    agent that is not live."""
    await get(conn, agent_id)
    rows = await agents_store.list_versions(conn, agent_id, limit=limit, offset=offset)
    total = await agents_store.count_versions(conn, agent_id)
    return rows, total


async def get_version(conn: Conn, agent_id: UUID, version: int) -> AgentVersionRow:
    await get(conn, agent_id)
    row = await agents_store.get_version(conn, agent_id, version)
    if row is None:
        raise NotFound(VERSION_NOT_FOUND, code="version_not_found")
    return row


async def restore(conn: Conn, agent_id: UUID, version: int) -> AgentRow:
    """Make version ``version``'s definition current as a new version (history is kept as it
    was). The old definition is checked again: a tool or model it names may be gone since."""
    old = await get_version(conn, agent_id, version)
    await _validate(conn, dict(old))
    row = await agents_store.restore_version(conn, agent_id, version)
    if row is None:
        # Retired meanwhile (a version once recorded is never deleted while its agent lives).
        raise NotFound("Agent not found")
    return row


async def get(conn: Conn, agent_id: UUID) -> AgentRow:
    """A live agent; 404 otherwise."""
    row = await agents_store.get(conn, agent_id)
    if row is None:
        raise NotFound("Agent not found")
    return row


async def page(
    conn: Conn, *, limit: int, offset: int, recommended_for: UUID | None = None
) -> tuple[list[AgentRow], int]:
    """A page of live agents (by name, or best match for ``recommended_for``) and how many
    there are."""
    rows = await agents_store.list_page(
        conn, limit=limit, offset=offset, recommended_for=recommended_for
    )
    return rows, await agents_store.count(conn)


async def retire(conn: Conn, agent_id: UUID) -> None:
    """Soft-delete an agent: its chats stay readable, new chats with it are refused. Its
    knowledge documents (and their chunks) are deleted."""
    async with conn.transaction():
        if not await agents_store.soft_delete(conn, agent_id):
            raise NotFound("Agent not found")
        await knowledge_store.delete_all_of_agent(conn, agent_id)


# The Agent Protocol's sort keys, as the agent's own.
_ASSISTANT_ORDER = {"assistant_id": "id", "graph_id": "slug"}


async def search(conn: Conn, query: AssistantSearch) -> list[AgentRow]:
    """The live agents an assistant search matches, sorted and paged in SQL."""
    if query.metadata:
        # Assistants carry no metadata of their own, so only an empty filter matches.
        return []
    key = query.sort_by or "created_at"
    return await agents_store.search(
        conn,
        slug=query.graph_id,
        name=query.name,
        order=_ASSISTANT_ORDER.get(key, key),
        descending=(query.sort_order or "desc") == "desc",
        limit=query.limit,
        offset=query.offset,
    )


async def count_matching(conn: Conn, query: AssistantSearch) -> int:
    if query.metadata:
        return 0
    return await agents_store.count_matching(conn, slug=query.graph_id, name=query.name)


def assistant_ref(assistant_id: str) -> UUID | str:
    """An assistant is named by its UUID or by its graph name (slug)."""
    try:
        return UUID(assistant_id)
    except ValueError:
        return assistant_id


async def unknown_assistant(conn: Conn, assistant_id: str) -> NotFound:
    """The 404 for a run naming an assistant that is no live agent, listing those that are.
    (The official server answers 422 with this text; a name that fits the schema and names
    nothing is a missing object here, as everywhere in this API.)"""
    rows = await agents_store.list_page(conn, limit=100, offset=0)
    graphs = ", ".join(row["slug"] for row in rows)
    return NotFound(
        f"Invalid assistant: {assistant_id!r}. Must be either:\n"
        f"- A valid assistant UUID, or\n- One of the registered graphs: {graphs}",
        code="assistant_not_found",
    )


async def find_assistant(conn: Conn, assistant_id: str) -> AgentRow:
    """The live agent named by its UUID or its graph id (slug); 404 naming it otherwise."""
    ref = assistant_ref(assistant_id)
    if isinstance(ref, UUID):
        agent = await agents_store.get(conn, ref)
    else:
        agent = await agents_store.get_by_slug(conn, ref)
    if agent is None:
        raise NotFound(f"Assistant {assistant_id!r} not found", code="assistant_not_found")
    return agent
