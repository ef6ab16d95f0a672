"""The Agent Protocol store: ``/store/items`` and ``/store/namespaces``, per user.

The official routes and shapes, so ``langgraph-sdk``'s ``client.store`` works unchanged. Every
namespace is the caller's own (``api/services/store.py``): no namespace names another user's
items. A missing item is ``null`` with 200, as the official server answers it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from api.deps import CurrentUserId, State
from api.schemas.store import (
    MAX_KEY_LENGTH,
    MAX_LABEL_LENGTH,
    MAX_NAMESPACE_DEPTH,
    Item,
    Key,
    ListNamespaceResponse,
    Namespace,
    SearchItemsResponse,
    StoreDelete,
    StoreListNamespaces,
    StorePut,
    StoreSearch,
)
from api.services import store as service
from api.wire.protocol import json_response

router = APIRouter(prefix="/store", tags=["agent protocol: store"])

_NAMESPACE = TypeAdapter(Namespace)
_KEY = TypeAdapter(Key)
# The longest dotted namespace the query may carry.
_MAX_DOTTED = MAX_NAMESPACE_DEPTH * (MAX_LABEL_LENGTH + 1)
# What the labels' own rules allow, stated for the query string: 1 to 10 labels of 1 to 100
# characters, none with `.` or NUL.
_LABEL = rf"[^.\x00]{{1,{MAX_LABEL_LENGTH}}}"
_DOTTED_PATTERN = rf"^{_LABEL}(\.{_LABEL}){{0,{MAX_NAMESPACE_DEPTH - 1}}}$"


def _query_value(adapter: TypeAdapter[Any], value: Any, name: str) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", name, *e["loc"])} for e in exc.errors()]
        ) from None


@router.put("/items", status_code=204, response_class=Response)
async def put_item(body: StorePut, user_id: CurrentUserId, state: State) -> Response:
    """Store or replace an item; its `text` field is embedded for search unless `index` says
    otherwise."""
    await service.put_item(state, user_id, body)
    return Response(status_code=204)


@router.get("/items", response_model=Item | None)
async def get_item(
    user_id: CurrentUserId,
    state: State,
    key: Annotated[str, Query(min_length=1, max_length=MAX_KEY_LENGTH)],
    namespace: Annotated[
        str,
        Query(
            min_length=1,
            max_length=_MAX_DOTTED,
            pattern=_DOTTED_PATTERN,
            description="The labels joined by `.`: `a.b`",
        ),
    ],
    refresh_ttl: bool | None = None,
) -> JSONResponse:
    """One item, or `null` when there is none."""
    labels = _query_value(_NAMESPACE, namespace.split(".") if namespace else [], "namespace")
    key = _query_value(_KEY, key, "key")
    return json_response(await service.get_item(state, user_id, labels, key, refresh_ttl))


@router.delete("/items", status_code=204, response_class=Response)
async def delete_item(body: StoreDelete, user_id: CurrentUserId, state: State) -> Response:
    """Delete an item (nothing happens if there is none)."""
    await service.delete_item(state, user_id, body.namespace, body.key)
    return Response(status_code=204)


@router.post("/items/search", response_model=SearchItemsResponse)
async def search_items(body: StoreSearch, user_id: CurrentUserId, state: State) -> JSONResponse:
    """Items under `namespace_prefix`, most recently updated first; with `query`, the closest
    to it first (`score`: cosine similarity)."""
    return json_response(await service.search_items(state, user_id, body))


@router.post("/namespaces", response_model=ListNamespaceResponse)
async def list_namespaces(
    body: StoreListNamespaces, user_id: CurrentUserId, state: State
) -> JSONResponse:
    """Your namespaces that hold items, in order, cut to `max_depth` labels if given."""
    return json_response(await service.list_namespaces(state, user_id, body))
