"""Dependencies that routes declare by type: ``CurrentUser``, ``AdminUser``, ``Pool`` …"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from api.errors import INVALID_TOKEN, Forbidden, Unauthorized
from api.settings import Settings
from api.state import AppState
from graphs import log_context
from storage import users as users_store
from storage.db import PoolType
from storage.rows import UserRow

# auto_error=False: a missing token is answered by our own 401 in our own error shape.
_bearer = OAuth2PasswordBearer(tokenUrl="/auth/login", auto_error=False)


# Dependencies are ``async def`` even when they never await: FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hop per request for a dictionary lookup.
async def get_state(request: Request) -> AppState:
    return request.app.state.switchboard


State = Annotated[AppState, Depends(get_state)]


async def get_pool(state: State) -> PoolType:
    return state.pool


async def get_settings(state: State) -> Settings:
    return state.settings


Pool = Annotated[PoolType, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def bearer_token(token: Annotated[str | None, Depends(_bearer)]) -> str | None:
    """The bearer token, if the request has one; for routes that accept another credential."""
    return token


async def get_token_user_id(state: State, token: Annotated[str | None, Depends(_bearer)]) -> UUID:
    """The user id in a valid bearer access token; 401 for any token that is not valid.

    The user's row is not read: only for a route whose first statement reads the user (starting
    a run reads the user, the chat and the agent in one) and answers ``Unauthorized`` itself
    when the user is gone. Every other route takes ``CurrentUserId`` or ``CurrentUser``.
    """
    if not token:
        raise Unauthorized()
    user_id = state.tokens.subject(token)
    if user_id is None:
        raise Unauthorized(INVALID_TOKEN)
    # The request's log lines (and its runs') name their user from here on.
    log_context.user_id.set(str(user_id))
    return user_id


TokenUserId = Annotated[UUID, Depends(get_token_user_id)]


async def get_current_user(state: State, user_id: TokenUserId) -> UserRow:
    """The user the bearer access token belongs to; 401 for any token that is not valid, and
    for a valid one whose user is gone (a deleted account)."""
    async with state.pool.connection() as conn:
        user = await users_store.get(conn, user_id)
    if user is None:
        raise Unauthorized(INVALID_TOKEN)
    return user


CurrentUser = Annotated[UserRow, Depends(get_current_user)]


async def get_current_user_id(user: CurrentUser) -> UUID:
    """The id of ``CurrentUser``: its row is read, so a deleted account's token is a 401."""
    return user["id"]


CurrentUserId = Annotated[UUID, Depends(get_current_user_id)]


async def get_admin_user(user: CurrentUser) -> UserRow:
    if user["role"] != "admin":
        raise Forbidden("Administrator role required")
    return user


AdminUser = Annotated[UserRow, Depends(get_admin_user)]
