"""Agent definitions: validation against the model and tool registries, and admin writes."""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from uuid import UUID

import psycopg

from api.errors import Conflict, InvalidInput, NotFound
from api.schemas.agents import AgentCreate, AgentUpdate
from graphs.models import UnknownModel, parse_model_name
from storage import agents as agents_store
from storage import interests as interests_store
from storage.db import Conn
from tools import TOOLS


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:60].rstrip("-") or "agent"


def agent_out(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id", "slug", "name", "description", "system_prompt", "avatar_url", "model_name",
        "tools_enabled", "interest_area_ids", "version", "created_at", "updated_at",
    )  # fmt: skip
    return {k: row[k] for k in keys}


async def _validate(conn: Conn, fields: dict[str, Any]) -> None:
    model_name = fields.get("model_name")
    if model_name is not None:
        try:
            parse_model_name(model_name)
        except UnknownModel as exc:
            raise InvalidInput(str(exc)) from None
    unknown_tools = [t for t in fields.get("tools_enabled") or [] if t not in TOOLS]
    if unknown_tools:
        known = ", ".join(sorted(TOOLS)) or "none"
        raise InvalidInput(f"Unknown tool(s): {', '.join(unknown_tools)}; available: {known}")
    area_ids = fields.get("interest_area_ids") or []
    missing = await interests_store.missing_ids(conn, area_ids)
    if missing:
        raise InvalidInput("Unknown interest area id(s): " + ", ".join(map(str, missing)))


def _columns(dto: AgentCreate | AgentUpdate, fields: set[str]) -> dict[str, Any]:
    values = dto.model_dump(include=fields)
    if values.get("avatar_url") is not None:
        values["avatar_url"] = str(getattr(dto, "avatar_url"))  # noqa: B009
    return values


async def create(conn: Conn, dto: AgentCreate, created_by: UUID) -> dict[str, Any]:
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


async def update(conn: Conn, agent_id: UUID, dto: AgentUpdate) -> dict[str, Any]:
    fields = _columns(dto, dto.model_fields_set)
    await _validate(conn, fields)
    row = await agents_store.update(conn, agent_id, fields)
    if row is None:
        raise NotFound("Agent not found")
    return row
