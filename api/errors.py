"""One error hierarchy and one JSON shape: ``{"detail": str, "code": str}``.

Validation errors keep FastAPI's list of problems under ``detail`` (code ``validation_error``).
Nothing raised inside the server ever reaches a client as text: unexpected exceptions are logged
and answered with a generic 500.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg_pool
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.security import redact_path
from graphs.custom import GraphUnavailable
from graphs.models import ProviderNotInstalled, UnknownModel
from graphs.runtime.types import ChatBusy, ChatGone, ShuttingDown
from storage.quotas import QuotaExceeded

log = logging.getLogger(__name__)


class AppError(Exception):
    """Base of every error the API answers on purpose."""

    status_code = 400
    code = "bad_request"
    detail = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ):
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail
        self.headers = headers
        # A more precise code than the class's, where the status alone is ambiguous: a 404 for
        # a chat that exists, about the message a cursor names.
        self.code = code or self.code


# What every rejected token is told, whatever was wrong with it (or its user).
INVALID_TOKEN = "Invalid or expired token"  # noqa: S105 (a message, not a secret)


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"
    detail = "Not authenticated"

    def __init__(self, detail: str | None = None, *, code: str | None = None):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, code=code)


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    detail = "You are not allowed to do this"


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    detail = "Not found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    detail = "Conflict"


class InvalidInput(AppError):
    """Well-formed input that names something that does not exist or cannot be used."""

    status_code = 422
    code = "invalid_input"
    detail = "Invalid input"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"
    detail = "Unsupported media type"


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"
    detail = "Too many requests"


class Unavailable(AppError):
    status_code = 503
    code = "unavailable"
    detail = "Service unavailable"


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _error(
    status: int, detail: object, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"detail": detail, "code": code}, headers=headers
    )


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return _error(exc.status_code, exc.detail, exc.code, exc.headers)


def routes_of(routes: list[Any]) -> Iterator[Any]:
    """Every route, through included routers (this app includes its routers without a prefix:
    their routes' paths are the paths served)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from routes_of(included.routes)
        else:
            yield route


def _literal_segments(path: str) -> int:
    return sum(1 for segment in path.split("/") if segment and "{" not in segment)


def _methods_for(request: Request) -> set[str]:
    """What ``Allow`` lists for the request's path: the methods of the routes that name it most
    literally. ``/runs/wait`` is the route ``/runs/wait``, not ``/runs/{run_id}`` with the id
    ``wait``, although both match it."""
    best, methods = -1, set[str]()
    # The path as routed: ``request.url`` goes through urlsplit, which drops tabs and line
    # breaks (``/runs/%0D`` would be ``/runs/``, which no route names).
    path = request.scope["path"]
    for route in routes_of(request.app.routes):
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is None or not route_methods or not regex.match(path):
            continue
        literal = _literal_segments(route.path)
        if literal > best:
            best, methods = literal, set()
        if literal == best:
            methods.update(route_methods)
    return methods


def _method_not_allowed(methods: set[str]) -> JSONResponse:
    return _error(
        405, "Method Not Allowed", "method_not_allowed", {"Allow": ", ".join(sorted(methods))}
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if any(error.get("loc", ())[:1] == ("path",) for error in exc.errors()):
        # ``GET /runs/wait`` matches ``/runs/{run_id}`` by shape, but names a route of its own
        # (``POST /runs/wait``): that is a method the path does not allow, not a bad id.
        methods = _methods_for(request)
        if request.method not in methods:
            return _method_not_allowed(methods)
    problems = []
    for error in exc.errors():
        # Echoing "input" back could reflect a password; "ctx" may hold exception objects.
        problems.append({k: v for k, v in error.items() if k in ("type", "loc", "msg")})
    return _error(422, jsonable_encoder(problems), "validation_error")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        # Starlette's ``Allow`` names the methods of the first route that matched the path
        # only; another route may serve the same path with other methods (GET and POST /agents/).
        return _method_not_allowed(_methods_for(request))
    code = _STATUS_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed"
    return _error(exc.status_code, detail, code, getattr(exc, "headers", None))


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    # Input that passed validation but that Postgres cannot store (a NUL byte, an out-of-range
    # number): the transaction was rolled back, so nothing changed.
    log.info(
        "rejected input Postgres cannot store on %s %s",
        request.method,
        redact_path(request.url.path),
    )
    return _error(422, "Input contains a value that cannot be stored", "invalid_input")


# How long a client is told to wait before retrying while the database is unreachable.
DATABASE_RETRY_AFTER_SECONDS = 5
# Connectivity failures: the server died or restarted (``AdminShutdown`` and the other
# ``OperationalError``s, ``PoolTimeout``), or a pooled connection it closed (``InterfaceError``).
DATABASE_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Nothing of the driver's message reaches the client; the pool replaces dead connections.
    log.warning(
        "database unavailable on %s %s: %s",
        request.method,
        redact_path(request.url.path),
        type(exc).__name__,
    )
    return _error(
        503,
        "The database is unavailable; retry shortly",
        "database_unavailable",
        {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


async def _runtime_error(_: Request, exc: Exception) -> JSONResponse:
    """What the runtime and the model registry refuse, the same way for every route."""
    if isinstance(exc, ChatBusy):
        detail = f"The chat already has an active run: {exc.active_run_id}"
        return _error(409, detail, Conflict.code)
    if isinstance(exc, ChatGone):
        return _error(404, "Chat not found", NotFound.code)
    if isinstance(exc, ShuttingDown):
        detail = "The server is shutting down; retry on another instance"
        return _error(503, detail, Unavailable.code, {"Retry-After": "1"})
    if isinstance(exc, GraphUnavailable):
        detail = "This agent's graph is not loaded by this server (see its langgraph.json)"
        return _error(409, detail, "graph_unavailable")
    assert isinstance(exc, UnknownModel)
    # Our own message, naming the model and the providers this server knows (or the package
    # that would make it runnable: ``provider_not_installed``).
    code = exc.code if isinstance(exc, ProviderNotInstalled) else InvalidInput.code
    return _error(422, str(exc), code)


# What each quota limits, for a refusal's message.
_QUOTA_UNITS = {
    "runs_per_minute": "runs started per minute",
    "tokens_per_day": "tokens per day (UTC)",
    "active_runs": "active runs at once",
}


def quota_detail(exc: QuotaExceeded) -> str:
    """A refusal by quota in words: which limit, and when to retry."""
    return (
        f"Quota exceeded: at most {exc.limit} {_QUOTA_UNITS[exc.quota]}; "
        f"retry in {exc.retry_after} s"
    )


async def _quota_exceeded(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuotaExceeded)
    headers = {"Retry-After": str(exc.retry_after)}
    return _error(429, quota_detail(exc), exc.code, headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, redact_path(request.url.path))
    return _error(500, "Internal server error", "internal_error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(psycopg.DataError, _data_error)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(QuotaExceeded, _quota_exceeded)
    for refused in (ChatBusy, ChatGone, ShuttingDown, UnknownModel, GraphUnavailable):
        app.add_exception_handler(refused, _runtime_error)
    app.add_exception_handler(Exception, _unexpected)
