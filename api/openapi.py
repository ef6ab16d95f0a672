"""What the OpenAPI document says a route can answer besides success.

Most error statuses follow from what a route is made of, so they are derived from it rather
than written at every route (where they would drift): a route that reads the bearer token can
answer 401, an admin route 403, a route with a path parameter 404 (another user's object is a
404 too), a route with a body 400 (not JSON), 413 (over the body limit) and 422, any route 503
while the database is unreachable. What only the code knows (409 for a busy chat, 429 from a
rate limit) a route declares with ``errors(...)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from pydantic.json_schema import JsonSchemaMode

from api.deps import bearer_token, get_admin_user, get_token_user_id
from api.errors import routes_of
from api.schemas.common import JSON_VALUE_MARKER, NO_NUL, json_object_schema


class Problem(BaseModel):
    """One thing wrong with a request (a validation error)."""

    type: str = Field(description="What kind of problem, e.g. `missing`, `string_too_long`")
    loc: list[str | int] = Field(
        description="Where: `body`, `query`, `path` or `header`, then the field"
    )
    msg: str


class ErrorBody(BaseModel):
    """Every error the API answers: a human-readable `detail` and a stable machine `code`."""

    detail: str | list[Problem] = Field(
        description="What went wrong. For `code: validation_error` a list of problems, one per "
        "field; otherwise a sentence"
    )
    code: str = Field(
        description="Stable across releases, e.g. `unauthorized`, `not_found`, `chat_busy`, "
        "`validation_error`, `invalid_input`, `rate_limited`, `database_unavailable`"
    )


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}

_DESCRIPTIONS: dict[int, str] = {
    400: "The body is not valid JSON (`bad_request`)",
    401: "No bearer access token, or one that is invalid or expired (`unauthorized`)",
    403: "The token's user may not do this (`forbidden`: administrators only)",
    404: "No such object, or it belongs to another user (`not_found`)",
    409: "Conflicts with the current state, e.g. a run is active on the chat",
    413: "The body is over the request body limit (`payload_too_large`)",
    415: "The body's `Content-Type` is not one the route takes (`unsupported_media_type`)",
    422: "Well-formed but invalid input: `validation_error` lists the problems, "
    "`invalid_input` says what it names that cannot be used",
    429: "Too many requests from this client (`rate_limited`), or a run over one of the "
    "user's quotas (`quota_runs_per_minute`, `quota_tokens_per_day`, `quota_active_runs`); "
    "retry after `Retry-After`",
    502: "A server this one had to ask did not answer as it should, e.g. an MCP server "
    "(`mcp_server_unavailable`)",
    503: "The database is unreachable (`database_unavailable`) or the server is shutting "
    "down; retry after `Retry-After`",
}


# The headers of a search's page (``api/wire/protocol.pagination_headers``), as documented.
PAGINATED: dict[str, Any] = {
    "headers": {
        "X-Pagination-Total": {
            "description": "How many items match the search in all",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        },
        "X-Pagination-Next": {
            "description": "The offset of the next page; absent on the last page",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        },
    }
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route for error statuses only its code knows about."""
    return {status: _error_response(status) for status in statuses}


# Models a route names in ``openapi_extra`` (a body it reads itself, the records of a JSON
# Lines answer): the document defines them beside the models FastAPI found.
_NAMED: dict[str, tuple[type[BaseModel], JsonSchemaMode]] = {}


def schema_ref(model: type[BaseModel], mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    """A reference to ``model``'s schema (as input, or with ``"serialization"`` as output),
    defined in the document's components."""
    _NAMED[model.__name__] = (model, mode)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _define_named(schemas: dict[str, Any]) -> None:
    for name, (model, mode) in _NAMED.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
        for defined, definition in {**schema.pop("$defs", {}), name: schema}.items():
            # A model FastAPI defined already (``ChatOut``) keeps its definition; a name two
            # models share would make one route's references lie.
            kept = schemas.setdefault(defined, definition)
            assert kept.get("title") == definition.get("title"), defined


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def derived_statuses(route: APIRoute) -> set[int]:
    """The error statuses a route can answer because of what it is made of."""
    calls = set(_calls(route.dependant))
    statuses = {503}
    # bearer_token: a route that takes another credential too (a run's stream token).
    if get_token_user_id in calls or bearer_token in calls:
        statuses.add(401)
    if get_admin_user in calls:
        statuses.add(403)
    if route.dependant.path_params:
        statuses.add(404)
    if route.body_field is not None:
        statuses |= {400, 413, 422}
    if route.dependant.query_params or route.dependant.path_params:
        statuses.add(422)
    return statuses


_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def _json_value_name(depth: int | None) -> str:
    return "JsonValue" if depth is None else f"JsonValueDepth{depth}"


def _json_value(depth: int | None, schemas: dict[str, Any]) -> dict[str, Any]:
    """A reference to the definition of a NUL-free JSON value (``depth``: nested at most so
    deep), defined in ``schemas`` with the ones it refers to."""
    name = _json_value_name(depth)
    if name not in schemas:
        scalars: list[dict[str, Any]] = [
            {"type": "string", "pattern": NO_NUL},
            {"type": ["number", "boolean", "null"]},
        ]
        schemas[name] = {"anyOf": scalars}
        if depth != 0:
            inner = _json_value(None if depth is None else depth - 1, schemas)
            scalars += [{"type": "array", "items": inner}, json_object_schema(inner)]
        limit = "any depth" if depth is None else f"nested at most {depth} deep"
        schemas[name]["description"] = f"A JSON value without NUL in a string or key, {limit}"
    return {"$ref": f"#/components/schemas/{name}"}


def _resolve_json_values(node: Any, schemas: dict[str, Any]) -> None:
    """Every ``JSON_VALUE_MARKER`` in the document becomes a reference to a definition."""
    if isinstance(node, dict):
        if JSON_VALUE_MARKER in node:
            depth = node.pop(JSON_VALUE_MARKER)
            node.update(_json_value(None if depth == "any" else depth, schemas))
        for value in list(node.values()):
            _resolve_json_values(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _resolve_json_values(value, schemas)


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _ERROR_REF}},
    }
    if status in (429, 503):
        response["headers"] = _RETRY_AFTER
    return response


def _without_webhooks(schemas: dict[str, Any]) -> None:
    """A server without a webhook secret refuses any webhook (422 `webhooks_disabled`): the
    request bodies that name one say it can only be null."""
    for schema in schemas.values():
        found = schema.get("properties", {}).get("webhook")
        if found is not None and any(v.get("type") == "string" for v in found.get("anyOf", [])):
            schema["properties"]["webhook"] = {
                "type": "null",
                "description": "This server sends no webhooks (SWITCHBOARD_WEBHOOK_SECRET is "
                "not set): a URL is a 422 `webhooks_disabled`",
            }


def _document(document: dict[str, Any], app: FastAPI, *, webhooks: bool) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    if not webhooks:
        _without_webhooks(schemas)
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorBody"] = error_schema
    _define_named(schemas)
    _resolve_json_values(document["components"], schemas)
    for route in routes_of(app.routes):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        operations = document["paths"][route.path_format]
        for method in route.methods or ():
            responses = operations[method.lower()]["responses"]
            # FastAPI's own 422 describes only its validation errors, without ``code``.
            if "422" in responses and "HTTPValidationError" in str(responses["422"]):
                del responses["422"]
            for status in sorted(derived_statuses(route)):
                responses.setdefault(str(status), _error_response(status))
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused not in json.dumps(document["paths"]):
            schemas.pop(unused, None)


def install(app: FastAPI, *, webhooks: bool = True) -> None:
    """Serve an OpenAPI document whose every operation lists the errors it can answer (and,
    without ``webhooks``, takes no webhook)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document(build(), app, webhooks=webhooks)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
