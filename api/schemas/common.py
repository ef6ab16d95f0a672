"""Building blocks shared by the request and response models."""

from __future__ import annotations

import json
from typing import Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic_core import PydanticCustomError

T = TypeVar("T")


def _no_nul(value: str) -> str:
    # Postgres text cannot hold NUL; reject it here with a clear message instead.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# A text field is ``Annotated[str, text_rules(...), NoNul]``: trimmed, bounded, NUL-free. It is
# written out as a module-level alias at each use (``Title = Annotated[str, ...]``): a type
# checker takes only such an alias as a type, not a call that builds one.
NoNul = AfterValidator(_no_nul)


def _nul_free(value: Any) -> Any:
    # JSON bound for a jsonb column: Postgres refuses \u0000 in any string or key, at any depth,
    # and a refusal that late would come after the request had created something.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return value


# For free-form JSON fields (``Annotated[dict[str, Any], NulFree]``).
NulFree = AfterValidator(_nul_free)

# Metadata (of threads, of runs; filters on it): at most this much JSON, this deeply nested.
MAX_METADATA_BYTES = 16_384
MAX_METADATA_DEPTH = 5


def json_size(value: Any) -> int:
    """The bytes of ``value`` as compact UTF-8 JSON (how responses and jsonb columns hold it)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode())


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in ``value``: 0 for a scalar, 1 for ``{}`` or ``[1]``,
    2 for ``{"a": {}}``. Iterative, so no value is too deep to measure."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def json_limits(*, max_bytes: int, max_depth: int) -> AfterValidator:
    """A validator for a free-form JSON field: at most ``max_bytes`` as JSON (``json_size``),
    nested at most ``max_depth`` deep (``json_depth``); ``None`` passes."""

    def check(value: Any) -> Any:
        if value is None:
            return value
        depth = json_depth(value)
        if depth > max_depth:
            raise PydanticCustomError(
                "json_too_deep",
                "Value should be nested at most {max_depth} levels deep, not {depth}",
                {"max_depth": max_depth, "depth": depth},
            )
        size = json_size(value)
        if size > max_bytes:
            raise PydanticCustomError(
                "json_too_large",
                "Value should be at most {max_bytes} bytes as JSON, not {size}",
                {"max_bytes": max_bytes, "size": size},
            )
        return value

    return AfterValidator(check)


# For metadata fields (``Annotated[dict[str, Any], NulFree, MetadataLimits]``).
MetadataLimits = json_limits(max_bytes=MAX_METADATA_BYTES, max_depth=MAX_METADATA_DEPTH)


def text_rules(*, min_length: int = 0, max_length: int, strip: bool = True) -> StringConstraints:
    """The bounds of a text field: trimmed unless ``strip=False``, ``min_length..max_length``."""
    return StringConstraints(strip_whitespace=strip, min_length=min_length, max_length=max_length)


class RequestModel(BaseModel):
    """Request bodies reject unknown fields, so a typo is a 422 rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    """One page of a listing."""

    items: list[T]
    total: int
    limit: int
    offset: int
