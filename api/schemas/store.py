"""The Agent Protocol store (``/store/...``, as ``langgraph-sdk`` sends it) and memories.

A namespace here is the caller's own: the server puts it under ``("users", <id>)`` and takes
that prefix off again in every answer. Labels are what LangGraph's store accepts (non-empty,
no ``.``, which joins them in its ``prefix`` column, no NUL), bounded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from api.schemas.common import JsonBool, JsonInt, JsonInteger, NoNul, NulFree, json_limits

MAX_LABEL_LENGTH = 100
MAX_NAMESPACE_DEPTH = 10
MAX_KEY_LENGTH = 255
MAX_VALUE_BYTES = 262_144
MAX_VALUE_DEPTH = 16
MAX_QUERY_LENGTH = 2000
# The comparison operators LangGraph's Postgres store knows in a filter.
FILTER_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")

Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_LABEL_LENGTH, pattern=r"^[^.\x00]+$"),
    Field(description="Not empty, without `.` or NUL"),
]
Namespace = Annotated[list[Label], Field(min_length=1, max_length=MAX_NAMESPACE_DEPTH)]
OptionalNamespace = Annotated[list[Label], Field(max_length=MAX_NAMESPACE_DEPTH)]
Key = Annotated[str, NoNul, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH)]
Query = Annotated[str, NoNul, StringConstraints(min_length=1, max_length=MAX_QUERY_LENGTH)]
Value = Annotated[
    dict[str, Any],
    NulFree,
    json_limits(max_bytes=MAX_VALUE_BYTES, max_depth=MAX_VALUE_DEPTH),
    Field(description="A JSON object, at most 256 KiB as JSON, nested at most 16 deep"),
]
Operator = Literal["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]
# A field's condition: a JSON value other than an object (equality), or an object of operators;
# stated in the schema, so every filter it allows is one the store can run.
Condition = (
    str
    | int
    | float
    | bool
    | None
    | list[Any]
    | Annotated[dict[Operator, Any], Field(min_length=1)]
)
Filter = Annotated[
    dict[Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH)], Condition],
    NulFree,
    json_limits(max_bytes=16_384, max_depth=5),
    Field(
        description="Items whose `value[field]` equals the given JSON, or compares to it with "
        f"an object of operators ({', '.join(f'`{o}`' for o in FILTER_OPERATORS)})"
    ),
]


class _Body(BaseModel):
    # Fields of newer clients that this server has no use for are ignored, as elsewhere in the
    # Agent Protocol.
    model_config = ConfigDict(extra="ignore")


def _only_false(value: Any) -> Any:
    # `false` itself, not 0, which a plain Literal[False] takes in lax mode.
    if value is not False:
        raise ValueError("index must be false, a list of fields, or null")
    return value


class StorePut(_Body):
    namespace: Namespace
    key: Key
    value: Value
    index: (
        Annotated[Literal[False], BeforeValidator(_only_false)]
        | Annotated[list[Label], Field(max_length=20)]
        | None
    ) = Field(
        None, description="`null`: index the `text` field; `false`: do not index; or the fields"
    )
    # At least a millisecond: shorter ones underflow the interval Postgres computes.
    ttl: float | None = Field(
        None, ge=0.001, le=525_600 * 100, description="Minutes the item lives after its last use"
    )


class StoreDelete(_Body):
    namespace: Namespace
    key: Key


class StoreSearch(_Body):
    namespace_prefix: OptionalNamespace | None = None
    filter: Filter | None = None
    limit: JsonInt = Field(10, ge=1, le=1000)
    offset: JsonInt = Field(0, ge=0, le=1_000_000)
    query: Query | None = None
    refresh_ttl: JsonBool | None = None


class StoreListNamespaces(_Body):
    prefix: OptionalNamespace | None = None
    suffix: OptionalNamespace | None = None
    # The bounds before the JSON-integer check: after it, pydantic writes them into the schema as
    # `ge`/`le`, which JSON Schema does not know.
    max_depth: Annotated[int, Field(ge=1, le=MAX_NAMESPACE_DEPTH), JsonInteger] | None = None
    limit: JsonInt = Field(100, ge=1, le=1000)
    offset: JsonInt = Field(0, ge=0, le=1_000_000)


class Item(BaseModel):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class SearchItem(Item):
    score: float | None = None


class SearchItemsResponse(BaseModel):
    items: list[SearchItem]


class ListNamespaceResponse(BaseModel):
    namespaces: list[list[str]]


class Memory(BaseModel):
    """Something an agent was told to remember (the `remember` tool)."""

    key: str
    text: str
    created_at: datetime
    updated_at: datetime
    score: float | None = Field(
        None, description="Relevance to `query` (higher is closer); null without a query"
    )


class MemoryPage(BaseModel):
    items: list[Memory]
    total: int = Field(description="How many memories you have")
    limit: int
    offset: int
    reindexing: bool = Field(
        description="With `query`: some of your memories are being indexed again for a new "
        "embedding model and cannot match until they are (always false without `query`: a "
        "listing has them all)"
    )
