"""``/users/me/api-keys``: long-lived credentials for services and scripts (the official SDKs'
``api_key``), made, listed and revoked by their user."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from api.deps import CurrentUser, CurrentUserId, Pool, SettingsDep, via_api_key
from api.openapi import errors
from api.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from api.schemas.common import Page
from api.services import api_keys as api_keys_service

router = APIRouter(prefix="/users/me/api-keys", tags=["users"])

Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=errors(403, 409),
)
async def create_api_key(
    body: ApiKeyCreate, request: Request, user: CurrentUser, pool: Pool, settings: SettingsDep
) -> dict[str, Any]:
    """Make an API key. The answer holds the key itself, shown this once; send it as
    `Authorization: Bearer <key>` or `x-api-key: <key>` on both APIs. It acts as you, in a
    user's scope; as an administrator only if you are one and ask for `admin` (403
    `admin_required` otherwise). Made with a login's access token only: a request with an API
    key is a 403 `login_required`. At most `SWITCHBOARD_API_KEYS_PER_USER` keys work at once
    (409 `api_key_limit_reached`)."""
    async with pool.connection() as conn:
        return await api_keys_service.create(
            conn,
            settings,
            user,
            name=body.name,
            expires_in_days=body.expires_in_days,
            admin=body.admin,
            by_api_key=via_api_key(request),
        )


@router.get("", response_model=Page[ApiKeyOut])
async def list_api_keys(
    user_id: CurrentUserId, pool: Pool, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Your API keys that are not revoked (expired ones included), newest first. Never the
    key itself."""
    async with pool.connection() as conn:
        items, total = await api_keys_service.list_keys(conn, user_id, limit=limit, offset=offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def revoke_api_key(key_id: UUID, user_id: CurrentUserId, pool: Pool) -> Response:
    """Revoke one of your API keys: from the next request on, it is a 401 `api_key_revoked`."""
    async with pool.connection() as conn:
        await api_keys_service.revoke(conn, user_id, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
