"""Dependencies that routes declare by type: ``CurrentUser``, ``AdminUser``, ``Pool`` …"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from api.errors import INVALID_TOKEN, Forbidden, Unauthorized
from api.services import api_keys
from api.settings import Settings
from api.state import AppState
from graphs import log_context
from storage import users as users_store
from storage.db import PoolType
from storage.rows import UserRow

# auto_error=False: a missing token is answered by our own 401 in our own error shape.
_bearer = OAuth2PasswordBearer(
    tokenUrl="/auth/login",
    auto_error=False,
    description="An access token from `/auth/login`, or an API key (`sb_live_…`)",
)
# What the official SDKs send when given ``api_key``.
_api_key = APIKeyHeader(
    name="x-api-key",
    scheme_name="ApiKey",
    auto_error=False,
    description="An API key from `POST /users/me/api-keys` (`sb_live_…`); "
    "`Authorization: Bearer` wins when a request sends both",
)
# Where ``get_token_user_id`` leaves the user an API key named, read with the key itself, so
# ``get_current_user`` does not read it again.
_KEY_USER = "switchboard_api_key_user"


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


async def bearer_token(
    token: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> str | None:
    """The request's credential, if it has one: its bearer token (an access token or an API
    key), else its ``x-api-key``; for routes that accept another credential too."""
    return token or api_key


async def authenticate(state: AppState, request: Request, credential: str) -> UUID:
    """The user id of an access token or an API key; 401 for anything else. A key's user row
    (read with the key, its role the key's scope) is kept on the request for ``CurrentUser``."""
    if api_keys.is_api_key(credential):
        user = await api_keys.authenticate(state.pool, credential)
        request.scope[_KEY_USER] = user
        user_id: UUID | None = user["id"]
    else:
        user_id = state.tokens.subject(credential)
    if user_id is None:
        raise Unauthorized(INVALID_TOKEN)
    # The request's log lines (and its runs') name their user from here on.
    log_context.user_id.set(str(user_id))
    return user_id


def via_api_key(request: Request) -> bool:
    """Whether the request was authenticated by an API key (not a login's access token)."""
    return _KEY_USER in request.scope


async def get_token_user_id(
    state: State, request: Request, token: Annotated[str | None, Depends(bearer_token)]
) -> UUID:
    """The user id of a valid access token or API key; 401 for any credential that is not
    valid.

    For an access token the user's row is not read: only for a route whose first statement
    reads the user (starting a run reads the user, the chat and the agent in one) and answers
    ``Unauthorized`` itself when the user is gone. Every other route takes ``CurrentUserId`` or
    ``CurrentUser``.
    """
    if not token:
        raise Unauthorized()
    return await authenticate(state, request, token)


TokenUserId = Annotated[UUID, Depends(get_token_user_id)]


async def get_current_user(state: State, request: Request, user_id: TokenUserId) -> UserRow:
    """The user the access token or API key belongs to; 401 for any credential that is not
    valid, and for a valid one whose user is gone (a deleted account)."""
    keyed: UserRow | None = request.scope.get(_KEY_USER)
    if keyed is not None:
        return keyed
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
