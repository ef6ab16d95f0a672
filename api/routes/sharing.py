"""Sharing a chat read-only: with other users (``/chats/{id}/shares``, ``/chats/shared-with-me``)
and by a public link (``/chats/{id}/share-link``, ``/shared/{token}``). Included before the
``/chats`` router, so ``/chats/shared-with-me`` is not read as a chat id.

A viewer reads the chat through the routes of ``/chats`` themselves; here only its owner
manages shares and the link (anyone else gets 404), and the link needs no token at all."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import JSONResponse

from api.deps import CurrentUser, CurrentUserId, Pool, State
from api.openapi import errors
from api.schemas.common import Page
from api.schemas.sharing import (
    ShareCreate,
    SharedChat,
    SharedChatOut,
    ShareLinkCreated,
    ShareLinkOut,
    ShareOut,
)
from api.services import sharing as sharing_service

router = APIRouter(tags=["sharing"])

Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
# What ``secrets.token_urlsafe`` makes; anything else names no link.
ShareToken = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get("/chats/shared-with-me", response_model=Page[SharedChatOut])
async def shared_with_me(
    user: CurrentUser, pool: Pool, limit: Limit = 20, offset: Offset = 0
) -> dict[str, Any]:
    """Chats other users shared with you, most recently active first. Read each with
    `GET /chats/{id}` and its messages, history and state; you cannot write to them."""
    async with pool.connection() as conn:
        items, total = await sharing_service.shared_with(
            conn, user["id"], limit=limit, offset=offset
        )
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.post(
    "/chats/{chat_id}/shares",
    status_code=status.HTTP_201_CREATED,
    response_model=ShareOut,
    responses={
        200: {"model": ShareOut, "description": "Already shared with them: nothing changed"},
        **errors(409, 429),
    },
)
async def share_chat(
    chat_id: UUID, body: ShareCreate, user_id: CurrentUserId, state: State
) -> JSONResponse:
    """Share your chat read-only with a registered user, by email: 201, or 200 if it already
    was (nothing changes). An email without an account is a 404 `user_not_found`, your own a
    409 `cannot_share_with_self`; at most `SWITCHBOARD_SHARES_PER_MINUTE` a minute (429)."""
    share, created = await sharing_service.share(state, user_id, chat_id, body.email, body.role)
    return JSONResponse(
        ShareOut.model_validate(share).model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


@router.get("/chats/{chat_id}/shares", response_model=Page[ShareOut])
async def list_shares(
    chat_id: UUID, user_id: CurrentUserId, pool: Pool, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Whom your chat is shared with, oldest share first."""
    async with pool.connection() as conn:
        items, total = await sharing_service.shares(
            conn, user_id, chat_id, limit=limit, offset=offset
        )
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.delete(
    "/chats/{chat_id}/shares/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def revoke_share(
    chat_id: UUID, user_id: UUID, owner_id: CurrentUserId, pool: Pool
) -> Response:
    """Stop sharing your chat with that user: their next request for it is a 404. Not shared
    with them: 404 `share_not_found`."""
    async with pool.connection() as conn:
        await sharing_service.revoke(conn, owner_id, chat_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/chats/{chat_id}/share-link",
    status_code=status.HTTP_201_CREATED,
    response_model=ShareLinkCreated,
)
async def create_share_link(chat_id: UUID, user_id: CurrentUserId, state: State) -> Any:
    """A public read-only link to your chat as it is now (`GET /shared/{token}`, no sign-in);
    messages sent later never show through it. It replaces the chat's previous link, whose
    token stops working. The token is shown only in this answer."""
    return await sharing_service.create_link(state, user_id, chat_id)


@router.get("/chats/{chat_id}/share-link", response_model=ShareLinkOut)
async def get_share_link(chat_id: UUID, user_id: CurrentUserId, state: State) -> Any:
    """Whether your chat has a link, since when, and how many messages it shows (its token
    cannot be shown again). None: 404 `share_link_not_found`."""
    return await sharing_service.link(state, user_id, chat_id)


@router.delete(
    "/chats/{chat_id}/share-link",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def revoke_share_link(chat_id: UUID, user_id: CurrentUserId, pool: Pool) -> Response:
    """Revoke your chat's link: it is a 404 from now on. None: 404 `share_link_not_found`."""
    async with pool.connection() as conn:
        await sharing_service.revoke_link(conn, user_id, chat_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/shared/{token}", response_model=SharedChat)
async def open_share_link(token: ShareToken, state: State, response: Response) -> Any:
    """A chat shared by link, as it was when the link was made: its title, its agent's name
    and its messages (`metadata.feedback` always null: votes are not shared). No sign-in. A
    revoked or unknown link is a 404."""
    # Revoking must take effect at once: nothing on the way may keep a copy.
    response.headers["Cache-Control"] = "no-store"
    return await sharing_service.open_link(state, token)
