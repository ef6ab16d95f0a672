"""Building blocks shared by the request and response models."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

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
