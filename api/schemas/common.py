"""Building blocks shared by the request and response models."""

from __future__ import annotations

import json
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    Strict,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

T = TypeVar("T")


def _no_nul(value: str) -> str:
    # Postgres text cannot hold NUL; reject it here with a clear message instead.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# What the schema says of every text the server stores: no NUL character (JSON Schema regexes
# are ECMA-262, where ``\x00`` means the same as in Python's).
NO_NUL = "^[^\\x00]*$"
# ... and of a text that must not be blank: some character that is neither space nor NUL.
# "Space" is what Python's ``str.strip`` removes, spelled out: ECMA-262's ``\s`` misses the
# separators U+001C..U+001F and U+0085, which Python strips (a title of "\x1e" matched the
# pattern and was refused as blank), and counts U+FEFF, which Python keeps.
_SPACE = (
    "\\t\\n\\x0b\\x0c\\r\\x1c-\\x20\\x85\\xa0"
    "\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
NOT_BLANK = f"^[^\\x00]*[^{_SPACE}\\x00][^\\x00]*$"


class _Text:
    """A text field's rule the schema cannot infer from pydantic's constraints: no NUL, and
    (``not_blank``) not only whitespace."""

    def __init__(self, *, not_blank: bool) -> None:
        self.pattern = NOT_BLANK if not_blank else NO_NUL
        self.not_blank = not_blank

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> CoreSchema:
        from pydantic_core import core_schema

        def check(value: str) -> str:
            _no_nul(value)
            if self.not_blank and not value.strip():
                raise ValueError("must not be blank")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema


# A text field is ``Annotated[str, text_rules(...), NoNul]`` (or ``NotBlank``): trimmed, bounded,
# NUL-free. It is written out as a module-level alias at each use (``Title = Annotated[str,
# ...]``): a type checker takes only such an alias as a type, not a call that builds one.
NoNul = _Text(not_blank=False)
NotBlank = _Text(not_blank=True)


def _json_integer(value: Any) -> Any:
    # JSON has one kind of number: 3.0 is the integer 3 (JSON Schema agrees), while true and
    # "3" are no numbers at all (pydantic's lax mode would take both).
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError(
                "int_from_float", "Input should be a valid integer, got a number with a fraction"
            )
        return int(value)
    return value


# Integers and booleans of request bodies, as JSON means them. Bounds go on the field
# (``JsonInt = Field(3, ge=1)``) or before the validator (``Annotated[int, Field(ge=1),
# JsonInteger]``): inside another ``Annotated`` pydantic writes them into the schema as ``ge``.
JsonInteger = BeforeValidator(_json_integer)
JsonInt = Annotated[int, JsonInteger]
JsonBool = Annotated[bool, Strict()]


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


# Where a schema holds a JSON value without NUL, this marker, with the depth it may nest to
# (or ``"any"``). ``openapi.install`` puts references to definitions in its place (pydantic
# would try to resolve a ``$ref`` it did not make).
JSON_VALUE_MARKER = "x-switchboard-json-value"


def json_value_schema(depth: int | None = None) -> dict[str, Any]:
    """The schema of a JSON value with no NUL in any string or key, nested at most ``depth``
    deep (``json_depth``), or as deep as it likes."""
    return {JSON_VALUE_MARKER: "any" if depth is None else depth}


def json_object_schema(values: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "propertyNames": {"pattern": NO_NUL}, "additionalProperties": values}


class _NulFree:
    """Free-form JSON bound for a jsonb column: Postgres refuses \\u0000 in any string or key,
    at any depth, and a refusal that late would come after the request had created something.
    The schema says so (``max_depth``: and nests at most that deep)."""

    def __init__(self, max_depth: int | None = None) -> None:
        self.max_depth = max_depth

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> CoreSchema:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(_nul_free, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        inner = None if self.max_depth is None else self.max_depth - 1
        for variant in json_schema.get("anyOf", [json_schema]):
            items = variant.get("items")
            if (
                variant.get("type") == "object"
                and variant.get("additionalProperties", True) is True
            ):
                variant.update(json_object_schema(json_value_schema(inner)))
            elif variant.get("type") == "array" and items and items.get("type") == "string":
                items["pattern"] = NO_NUL
            elif variant.get("type") == "array":
                variant["items"] = json_value_schema(inner)
            elif variant.get("type") == "string":
                variant["pattern"] = NO_NUL
            elif not variant:  # Any
                variant.update(json_value_schema(self.max_depth))
        return json_schema


# For free-form JSON fields (``Annotated[dict[str, Any], NulFree]``).
NulFree = _NulFree()


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


# For metadata fields (``Annotated[dict[str, Any], MetadataNulFree, MetadataLimits]``).
MetadataLimits = json_limits(max_bytes=MAX_METADATA_BYTES, max_depth=MAX_METADATA_DEPTH)
MetadataNulFree = _NulFree(max_depth=MAX_METADATA_DEPTH)

# Tool call arguments an import writes into a thread: nested at most this deep. The checkpoint's
# msgpack encoding refuses values nested a few hundred deep, and arguments models write are
# shallow; each level is one more definition in the schema, which fuzzers explore level by level.
MAX_TOOL_ARGS_DEPTH = 6
ToolArgsLimits = json_limits(max_bytes=2**62, max_depth=MAX_TOOL_ARGS_DEPTH)
ToolArgsNulFree = _NulFree(max_depth=MAX_TOOL_ARGS_DEPTH)


def text_rules(*, min_length: int = 0, max_length: int, strip: bool = True) -> StringConstraints:
    """The bounds of a text field: trimmed unless ``strip=False``, ``min_length..max_length``."""
    return StringConstraints(strip_whitespace=strip, min_length=min_length, max_length=max_length)


# A run's webhook, in both APIs: an absolute http(s) URL that the SSRF guard accepts, checked
# when the run is created (api/services/webhooks.py); 1-65536 characters, as the official
# server's schema has it. A server without a webhook secret documents it as null only
# (api/openapi.py), since it takes none.
WebhookUrl = Annotated[
    str, Field(min_length=1, max_length=65536, json_schema_extra={"format": "uri"}), NoNul
]
WEBHOOK_DESCRIPTION = (
    "POSTed the run's final record, signed, when the run ends. An http(s) URL without user "
    "info whose host resolves only to public addresses (or is on "
    "`SWITCHBOARD_WEBHOOK_ALLOWED_HOSTS`); otherwise a 422 `webhook_not_allowed` and nothing "
    "is created"
)


class RequestModel(BaseModel):
    """Request bodies reject unknown fields, so a typo is a 422 rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    """One page of a listing."""

    items: list[T]
    total: int
    limit: int
    offset: int


class SchemaOnly:
    """Changes only what the schema says of a field, to state a rule its validators enforce."""

    def __init__(self, change: Any) -> None:
        self.change = change

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        self.change(json_schema)
        return json_schema


def _drop_null(json_schema: dict[str, Any]) -> None:
    variants = [v for v in json_schema.pop("anyOf", []) if v.get("type") != "null"]
    if len(variants) == 1:
        json_schema.update(variants[0])
    elif variants:
        json_schema["anyOf"] = variants


# A field of a partial update that may be left out but not set to null (a model validator
# refuses the null; the schema says so by not allowing it).
NotNull = SchemaOnly(_drop_null)


def _unique_items(json_schema: dict[str, Any]) -> None:
    for variant in json_schema.get("anyOf", [json_schema]):
        if variant.get("type") == "array":
            variant["uniqueItems"] = True


# A list whose items must not repeat (checked by ``unique`` in a validator).
UniqueItems = SchemaOnly(_unique_items)
