"""Request bodies of the v2 event stream (``POST /threads/{id}/stream/events``) and of its
commands (``POST /threads/{id}/commands``), as the JS SDK's v2 transports send them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from api.schemas.common import (
    NO_NUL,
    JsonInteger,
    NoNul,
    NulFree,
    json_object_schema,
    json_value_schema,
)
from api.schemas.events import JSON
from api.wire.v2 import CHANNELS, supported_channel

MAX_NAMESPACES = 50
MAX_NAMESPACE_DEPTH = 20
MAX_SEGMENT = 200


def _channel(value: str) -> str:
    if not supported_channel(value):
        raise ValueError(f"unknown channel; use {', '.join(CHANNELS)} or custom:<name>")
    return value


Channel = Annotated[
    str,
    NoNul,
    Field(max_length=MAX_SEGMENT),
    AfterValidator(_channel),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": list(CHANNELS)},
                {"type": "string", "pattern": "^custom:[^\\x00]+$", "maxLength": MAX_SEGMENT},
            ]
        }
    ),
]
Segment = Annotated[str, NoNul, Field(max_length=MAX_SEGMENT)]
Namespace = Annotated[list[Segment], Field(max_length=MAX_NAMESPACE_DEPTH)]


class EventFilter(BaseModel):
    """Which events to send: channels, namespace prefixes and how deep below them."""

    model_config = ConfigDict(extra="ignore")

    channels: list[Channel] = Field(min_length=1, max_length=len(CHANNELS) + 20)
    namespaces: list[Namespace] | None = Field(
        None,
        max_length=MAX_NAMESPACES,
        description="Namespace prefixes (a segment without `:` also matches `segment:<id>`); "
        "absent: every namespace",
    )
    depth: Annotated[int, Field(ge=0, le=MAX_NAMESPACE_DEPTH), JsonInteger] | None = Field(
        None, description="How many levels below a prefix; absent: all"
    )


class EventStreamRequest(EventFilter):
    since: Annotated[int, Field(ge=0, le=2**53 - 1), JsonInteger] | None = Field(
        None, description="The last `seq` received: only events after it are sent"
    )


class Command(BaseModel):
    """One protocol command: ``{id, method, params}``."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[int, Field(ge=0, le=2**53 - 1), JsonInteger]
    method: Annotated[str, NoNul] = Field(min_length=1, max_length=100)
    params: Annotated[dict[str, Any], NulFree] = Field(default_factory=dict)


def _run_start_only(schema: dict[str, Any]) -> None:
    # Over HTTP only ``run.start`` and ``input.respond`` succeed (any other method is a 400
    # ``unknown_command``, the subscription commands a 400 ``unsupported``), each with its own
    # params (others are a 400 ``invalid_argument``): the document says what is accepted.
    schema["properties"]["method"] = {
        "enum": ["run.start", "input.respond"],
        "description": "The subscription commands are WebSocket ones",
    }
    schema["properties"]["params"] = json_object_schema(json_value_schema())
    schema["required"] = ["id", "method", "params"]
    schema["allOf"] = [
        {
            "if": {"properties": {"method": {"const": "run.start"}}},
            "then": {"properties": {"params": {"$ref": "#/components/schemas/RunCreate"}}},
        },
        {
            "if": {"properties": {"method": {"const": "input.respond"}}},
            "then": {"properties": {"params": RESPOND_PARAMS}},
        },
    ]


_ANSWER = {
    "type": "object",
    "required": ["interrupt_id"],
    "properties": {
        "interrupt_id": {"type": "string", "minLength": 1, "pattern": NO_NUL},
        "response": json_value_schema(),
        "namespace": {"type": "array", "items": {"type": "string", "pattern": NO_NUL}},
    },
}
RESPOND_PARAMS: dict[str, Any] = {
    "description": "One answer `{interrupt_id, response}`, or several as `responses`",
    "anyOf": [
        {**_ANSWER, "not": {"required": ["responses"]}},
        {
            "type": "object",
            "required": ["responses"],
            "properties": {"responses": {"type": "array", "items": _ANSWER, "minItems": 1}},
        },
    ],
}


class HttpCommand(Command):
    """A command sent to ``POST /threads/{id}/commands``."""

    model_config = ConfigDict(
        extra="ignore", title="ProtocolCommand", json_schema_extra=_run_start_only
    )


# The commands' answers: the official envelope.
COMMAND_SUCCESS: dict[str, Any] = {
    "type": "object",
    "required": ["type", "id", "result", "meta"],
    "properties": {
        "type": {"const": "success"},
        "id": {"type": "integer", "minimum": 0},
        "result": {"type": "object"},
        "meta": {
            "type": "object",
            "required": ["applied_through_seq"],
            "properties": {"applied_through_seq": {"type": "integer", "minimum": 0}},
        },
    },
}
COMMAND_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["type", "id", "error", "message", "detail", "code"],
    "properties": {
        "type": {"const": "error"},
        "id": {"type": ["integer", "null"]},
        "error": {"type": "string"},
        "message": {"type": "string"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
    },
}

_V2_DATA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "event_id", "seq", "method", "params"],
    "properties": {
        "type": {"const": "event"},
        "event_id": {"type": "string", "minLength": 1},
        "seq": {"type": "integer", "minimum": 1},
        "method": {"type": "string"},
        "params": {
            "type": "object",
            "required": ["namespace", "timestamp", "data"],
            "properties": {
                "namespace": {"type": "array", "items": {"type": "string"}},
                "timestamp": {"type": "integer"},
                "data": {},
            },
        },
    },
}
V2_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "One v2 event; `id` is its `seq`",
    "required": ["event", "data", "id"],
    "properties": {
        "event": {
            "enum": ["lifecycle", "values", "updates", "messages", "custom", "input.requested"]
        },
        "data": {"type": "string", "contentMediaType": JSON, "contentSchema": _V2_DATA},
        "id": {"type": "string", "pattern": "^[1-9][0-9]*$"},
    },
}
