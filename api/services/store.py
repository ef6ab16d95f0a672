"""The Agent Protocol store and long-term memories: one user's part of LangGraph's store.

Every namespace a caller names is put under ``("users", <their id>)`` here, and taken off
again in what they get back: whatever namespace is asked for, only the caller's items are
read, written, listed or deleted.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langgraph.store.base import Item, SearchItem

from api.errors import NotFound
from api.schemas.store import StoreListNamespaces, StorePut, StoreSearch
from api.state import AppState
from storage.store import MEMORIES, user_namespace, visible_namespace

MEMORY_NOT_FOUND = "memory_not_found"


def item_json(user_id: UUID, item: Item) -> dict[str, Any]:
    """An item as the official server answers it, its namespace as the caller named it."""
    found = {
        "namespace": visible_namespace(user_id, item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
    if isinstance(item, SearchItem):
        found["score"] = item.score
    return found


async def put_item(state: AppState, user_id: UUID, body: StorePut) -> None:
    await state.store.aput(
        user_namespace(user_id, *body.namespace),
        body.key,
        body.value,
        index=body.index,
        ttl=body.ttl,
    )


async def get_item(
    state: AppState, user_id: UUID, namespace: list[str], key: str, refresh_ttl: bool | None
) -> dict[str, Any] | None:
    item = await state.store.aget(user_namespace(user_id, *namespace), key, refresh_ttl=refresh_ttl)
    return item_json(user_id, item) if item is not None else None


async def delete_item(state: AppState, user_id: UUID, namespace: list[str], key: str) -> None:
    await state.store.adelete(user_namespace(user_id, *namespace), key)


async def search_items(state: AppState, user_id: UUID, body: StoreSearch) -> dict[str, Any]:
    items = await state.store.asearch(
        user_namespace(user_id, *(body.namespace_prefix or ())),
        query=body.query,
        filter=body.filter,
        limit=body.limit,
        offset=body.offset,
        refresh_ttl=body.refresh_ttl,
    )
    return {"items": [item_json(user_id, item) for item in items]}


async def list_namespaces(
    state: AppState, user_id: UUID, body: StoreListNamespaces
) -> dict[str, Any]:
    own = user_namespace(user_id)
    found = await state.store.alist_namespaces(
        prefix=(*own, *(body.prefix or ())),
        suffix=tuple(body.suffix) if body.suffix else None,
        max_depth=len(own) + body.max_depth if body.max_depth is not None else None,
        limit=body.limit,
        offset=body.offset,
    )
    return {"namespaces": [visible_namespace(user_id, namespace) for namespace in found]}


# Memories: the items of the user's ``("memories",)`` namespace, written by ``remember``.


def memory_json(item: Item) -> dict[str, Any]:
    text = item.value.get("text")
    return {
        "key": item.key,
        "text": text if isinstance(text, str) else "",
        "created_at": item.created_at,
        "updated_at": item.updated_at,
        "score": item.score if isinstance(item, SearchItem) else None,
    }


async def memories(
    state: AppState, user_id: UUID, *, query: str | None, limit: int, offset: int
) -> dict[str, Any]:
    """The user's memories closest to ``query`` first, or newest first without one.

    ``reindexing``: a search (with ``query``) may miss memories whose vectors are still being
    made again after a change of embedding model; a listing misses none."""
    namespace = user_namespace(user_id, MEMORIES)
    items = await state.store.asearch(namespace, query=query, limit=limit, offset=offset)
    total = await state.store.acount(namespace)
    reindexing = query is not None and await state.store.areindexing(namespace)
    return {
        "items": [memory_json(item) for item in items],
        "total": total,
        "limit": limit,
        "offset": offset,
        "reindexing": reindexing,
    }


async def delete_memory(state: AppState, user_id: UUID, key: str) -> None:
    namespace = user_namespace(user_id, MEMORIES)
    if await state.store.aget(namespace, key, refresh_ttl=False) is None:
        raise NotFound("No such memory", code=MEMORY_NOT_FOUND)
    await state.store.adelete(namespace, key)


async def delete_memories(state: AppState, user_id: UUID) -> int:
    return await state.store.adelete_prefix(user_namespace(user_id, MEMORIES))
