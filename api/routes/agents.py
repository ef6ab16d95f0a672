"""``/agents``: every signed-in user reads them; only admins write."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response, status

from api.deps import AdminUser, CurrentUser, Pool
from api.openapi import errors
from api.schemas.agents import AgentCreate, AgentOut, AgentUpdate, AgentVersionOut
from api.schemas.common import Page
from api.schemas.feedback import FeedbackSummary
from api.services import agents as agents_service
from api.services import feedback as feedback_service

router = APIRouter(prefix="/agents", tags=["agents"])

Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Version = Annotated[int, Path(ge=1, le=2_147_483_647)]


@router.get("/", response_model=Page[AgentOut])
async def list_agents(
    user: CurrentUser,
    pool: Pool,
    limit: Limit = 20,
    offset: Offset = 0,
    recommended: Annotated[
        bool, Query(description="Order by overlap with your interest areas")
    ] = False,
) -> dict[str, Any]:
    """Agents you can chat with, by name or, with `recommended=true`, best match first."""
    async with pool.connection() as conn:
        rows, total = await agents_service.page(
            conn, limit=limit, offset=offset, recommended_for=user["id"] if recommended else None
        )
    return {
        "items": [agents_service.agent_out(r) for r in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: UUID, _: CurrentUser, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        return agents_service.agent_out(await agents_service.get(conn, agent_id))


@router.post(
    "/", status_code=status.HTTP_201_CREATED, response_model=AgentOut, responses=errors(404, 409)
)
async def create_agent(body: AgentCreate, admin: AdminUser, pool: Pool) -> dict[str, Any]:
    """Create an agent (admins only)."""
    async with pool.connection() as conn:
        row = await agents_service.create(conn, body, admin["id"])
    return agents_service.agent_out(row)


@router.put("/{agent_id}", response_model=AgentOut)
async def update_agent(
    agent_id: UUID, body: AgentUpdate, _: AdminUser, pool: Pool
) -> dict[str, Any]:
    """Change an agent (admins only); its version goes up and new messages use the change."""
    async with pool.connection() as conn:
        row = await agents_service.update(conn, agent_id, body)
    return agents_service.agent_out(row)


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_agent(agent_id: UUID, _: AdminUser, pool: Pool) -> Response:
    """Retire an agent (admins only): its chats stay readable, new chats with it are refused."""
    async with pool.connection() as conn:
        await agents_service.retire(conn, agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{agent_id}/feedback-summary", response_model=FeedbackSummary)
async def feedback_summary(agent_id: UUID, _: AdminUser, pool: Pool) -> dict[str, Any]:
    """Votes on the agent's answers per agent version, newest first (admins only)."""
    async with pool.connection() as conn:
        return await feedback_service.summary(conn, agent_id)


@router.get("/{agent_id}/versions", response_model=Page[AgentVersionOut], responses=errors(404))
async def list_versions(
    agent_id: UUID, _: AdminUser, pool: Pool, limit: Limit = 20, offset: Offset = 0
) -> dict[str, Any]:
    """Every definition the agent has had, newest first (admins only). Retiring an agent
    bumps its version without a definition, so that number has no entry."""
    async with pool.connection() as conn:
        rows, total = await agents_service.versions_page(conn, agent_id, limit=limit, offset=offset)
    return {"items": rows, "total": total, "limit": limit, "offset": offset}


@router.get(
    "/{agent_id}/versions/{version}",
    response_model=AgentVersionOut,
    responses=errors(404),
)
async def get_version(agent_id: UUID, version: Version, _: AdminUser, pool: Pool) -> Any:
    """The agent's definition at one version (admins only); `version_not_found` if it has
    no such version."""
    async with pool.connection() as conn:
        return await agents_service.get_version(conn, agent_id, version)


@router.post(
    "/{agent_id}/versions/{version}/restore",
    response_model=AgentOut,
    responses=errors(404, 422),
)
async def restore_version(agent_id: UUID, version: Version, _: AdminUser, pool: Pool) -> Any:
    """Make version `version`'s definition current again, as a new version (admins only):
    history is never rewritten, and new messages use the restored definition. A 422 if the
    old definition names a tool or model this server no longer has."""
    async with pool.connection() as conn:
        row = await agents_service.restore(conn, agent_id, version)
    return agents_service.agent_out(row)
