"""``/auth``: register, login, refresh, logout."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.deps import Pool, State
from api.openapi import errors
from api.schemas.auth import AuthResponse, LoginRequest, RefreshRequest, RegisterRequest
from api.services import auth as auth_service

router = APIRouter(prefix="/auth", tags=["auth"])

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "title": "OAuth2PasswordForm",
                    "required": ["username", "password"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": {"type": "string", "description": "The account's email"},
                        "password": {"type": "string", "format": "password"},
                    },
                }
            },
        },
    }
}


def _client(request: Request) -> str:
    """The client's address as uvicorn reports it (after its proxy-headers handling)."""
    return auth_service.client_key(request.client.host if request.client else None)


def _invalid(errors: list[Any]) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors])


async def _login_body(request: Request) -> LoginRequest:
    """JSON ``{email, password}``, or the OAuth2 password form (``username`` is the email)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in _FORM_TYPES:
        form = await request.form()
        email, password = form.get("username"), form.get("password")
        data: Any = {
            "email": email if isinstance(email, str) else None,
            "password": password if isinstance(password, str) else None,
        }
    else:
        try:
            data = await request.json()
        except ValueError:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": "Body must be valid JSON"}]
            ) from None
    try:
        return LoginRequest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc.errors()) from None


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=AuthResponse,
    responses=errors(409, 429),
)
async def register(body: RegisterRequest, request: Request, state: State) -> dict[str, Any]:
    """Create an account and sign it in (a limited number per minute from one address)."""
    return await auth_service.register(
        state,
        name=body.name,
        email=str(body.email),
        password=body.password,
        client=_client(request),
    )


@router.post(
    "/login",
    response_model=AuthResponse,
    openapi_extra=_LOGIN_BODY,
    responses=errors(400, 401, 413, 422, 429),
)
async def login(request: Request, state: State) -> dict[str, Any]:
    """Sign in with email and password (JSON, or the OAuth2 password form of `/docs`)."""
    body = await _login_body(request)
    return await auth_service.login(
        state, email=body.email, password=body.password, client=_client(request)
    )


@router.post("/refresh", response_model=AuthResponse, responses=errors(401, 429))
async def refresh(body: RefreshRequest, request: Request, state: State) -> dict[str, Any]:
    """Trade a refresh token for a new pair; the old refresh token cannot be used again."""
    return await auth_service.refresh(state, body.refresh_token, client=_client(request))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def logout(body: RefreshRequest, pool: Pool) -> Response:
    """Revoke the refresh token and every token rotated from the same login."""
    await auth_service.logout(pool, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
