"""``/chats``: the caller's conversations. Another user's chat is a 404 on every route; one
shared with the caller can be read (``GET /chats/{id}``), nothing more."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from api.deps import CurrentUser, CurrentUserId, Pool, State, TokenUserId
from api.openapi import errors
from api.schemas.chats import ChatCreate, ChatOut, ChatUpdate, ChatView
from api.schemas.common import Page
from api.services import chats as chats_service

router = APIRouter(prefix="/chats", tags=["chats"])


@router.get("/", response_model=Page[ChatOut])
async def list_chats(
    user: CurrentUser,
    pool: Pool,
    status_: Annotated[Literal["active", "archived"] | None, Query(alias="status")] = None,
    agent_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=r"^[^\x00]*$",
            description="Only chats whose title contains this text (case-insensitive)",
        ),
    ] = None,
) -> dict[str, Any]:
    """Your chats, most recently active first."""
    async with pool.connection() as conn:
        items, total = await chats_service.page(
            conn,
            user["id"],
            status=status_,
            agent_id=agent_id,
            limit=limit,
            offset=offset,
            q=q,
        )
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.post(
    "/", status_code=status.HTTP_201_CREATED, response_model=ChatOut, responses=errors(404, 409)
)
async def create_chat(body: ChatCreate, user_id: TokenUserId, pool: Pool) -> dict[str, Any]:
    """Open a chat with an agent (`ttl`: it expires that many minutes after it last changed)."""
    async with pool.connection() as conn:
        row = await chats_service.create(conn, user_id, body.agent_id, body.title, body.ttl)
    return chats_service.chat_out(row)


@router.get("/{chat_id}", response_model=ChatView)
async def get_chat(chat_id: UUID, user: CurrentUser, pool: Pool) -> dict[str, Any]:
    """Your chat, or one shared with you (`access: "viewer"`)."""
    async with pool.connection() as conn:
        return chats_service.chat_view(await chats_service.get_readable(conn, chat_id, user["id"]))


@router.put("/{chat_id}", response_model=ChatOut)
async def update_chat(
    chat_id: UUID, body: ChatUpdate, user: CurrentUser, pool: Pool
) -> dict[str, Any]:
    """Rename or archive (or unarchive) a chat."""
    async with pool.connection() as conn:
        return await chats_service.update(
            conn, chat_id, user["id"], body.model_dump(include=body.model_fields_set)
        )


@router.delete("/{chat_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_chat(chat_id: UUID, user_id: CurrentUserId, state: State) -> Response:
    """Delete a chat and its history (every checkpoint of its thread); a run it has going is
    stopped first (its stream ends with `cancelled`)."""
    await chats_service.delete(state, user_id, chat_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
