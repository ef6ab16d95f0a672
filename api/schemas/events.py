"""The events of our ``text/event-stream`` responses, as JSON Schemas for the OpenAPI document.

In OpenAPI 3.1 a ``text/event-stream`` media type's ``schema`` describes one event as a client
parses it: an object with the string fields ``event``, ``data`` and ``id``. Each format is one
such schema whose ``allOf`` pairs every event name (``if``) with the ``contentSchema`` of its
JSON ``data`` (``then``), so a validator such as schemathesis checks each event's payload too:
precise where the shape is ours (``api/wire``, the runtime's ``end``), any JSON where it is the
graph's state. Self-contained (no ``$ref``), to be used inline in a route's ``responses=``.
"""

from __future__ import annotations

import copy
from typing import Any

from graphs.images import IMAGE_TYPES

JSON = "application/json"
# Event ids: 1, 2, 3 … within a run (``graphs/events.py``), sent as decimal text.
EVENT_ID: dict[str, Any] = {"type": "string", "pattern": "^[1-9][0-9]*$"}
UUID: dict[str, Any] = {"type": "string", "format": "uuid"}
ANY_JSON: dict[str, Any] = {}
NON_EMPTY: dict[str, Any] = {"type": "string", "minLength": 1}

# The token counts of a run or of one answer (``graphs/runtime/streams.USAGE_KEYS``).
_COUNTS: dict[str, Any] = {
    "type": "object",
    "required": ["input_tokens", "output_tokens", "total_tokens"],
    "properties": {
        key: {"type": "integer", "minimum": 0}
        for key in ("input_tokens", "output_tokens", "total_tokens")
    }
    | {
        "estimated": {
            "const": True,
            "description": "Present when the provider reported no usage and the counts are "
            "an estimate (characters / 4)",
        }
    },
    "additionalProperties": False,
}
# A run's usage: ``{}`` until an answer reported usage, then all three counts.
_RUN_USAGE: dict[str, Any] = {
    "anyOf": [{"type": "object", "maxProperties": 0}, _COUNTS],
    "description": "Token counts of the whole run; `{}` when no answer reported any",
}
# The runtime's last event of every run, in both formats (``graphs/runtime/execution.py``,
# ``scheduling.py`` for a run stopped before it started, ``redis_logs.py`` for an orphan).
END_DATA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "usage"],
    "properties": {
        "status": {"enum": ["success", "error", "cancelled", "interrupted"]},
        "usage": _RUN_USAGE,
    },
    "additionalProperties": False,
}


def _data(content_schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "string", "contentMediaType": JSON, "contentSchema": content_schema}


def _event_schema(
    name: dict[str, Any], cases: list[tuple[dict[str, Any], dict[str, Any]]], description: str
) -> dict[str, Any]:
    """One event: ``name`` constrains ``event``; ``cases`` pairs an ``event`` schema with the
    ``contentSchema`` of the data of the events it matches."""
    return {
        "type": "object",
        "description": description,
        "required": ["event", "data", "id"],
        "properties": {
            "event": name,
            "data": {"type": "string", "contentMediaType": JSON},
            "id": EVENT_ID,
            "retry": {"type": "integer", "minimum": 0, "description": "Never sent"},
        },
        "additionalProperties": False,
        "allOf": [
            {
                "if": {"required": ["event"], "properties": {"event": event}},
                "then": {"properties": {"data": _data(data)}},
            }
            for event, data in cases
        ],
    }


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object with exactly these fields (``required`` always there)."""
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
    }


# --- native (api/wire/native.py) ---------------------------------------------------------------

_AGENT_METADATA = _object(
    {
        "model": {"type": ["string", "null"]},
        "usage": {"anyOf": [{"type": "null"}, _COUNTS]},
        "latency_ms": {"type": ["number", "null"], "minimum": 0},
        "finish_reason": {"type": ["string", "null"]},
        "tool_calls": {
            "type": "array",
            "items": _object(
                {"id": NON_EMPTY, "name": NON_EMPTY, "args": {"type": "object"}},
            ),
        },
        # The owner's vote, or null (filled in on reads of a chat: messages, state, exports).
        "feedback": {
            "anyOf": [
                {"type": "null"},
                _object(
                    {
                        "score": {"enum": [-1, 0, 1]},
                        "comment": {"type": ["string", "null"], "maxLength": 2000},
                        "created_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time"},
                    }
                ),
            ]
        },
    },
)
_TOOL_METADATA = _object(
    {"tool_call_id": NON_EMPTY, "name": NON_EMPTY, "is_error": {"type": "boolean"}}
)
# A message sent in parts (``api.wire.native.parts``, ``TextPartOut``, ``ImagePartOut``).
_PARTS = {
    "type": "array",
    "items": {
        "oneOf": [
            _object({"type": {"const": "text"}, "text": {"type": "string"}}),
            _object(
                {
                    "type": {"const": "image"},
                    "mime_type": {"enum": list(IMAGE_TYPES)},
                    "url": {"type": "string", "pattern": "^data:image/(png|jpeg|gif|webp);base64,"},
                }
            ),
        ]
    },
}
# The Message of the native API (``api.wire.native.to_api``, ``MessageOut``).
MESSAGE: dict[str, Any] = {
    **_object(
        {
            "id": NON_EMPTY,
            "chat_id": UUID,
            "sender": {"enum": ["user", "agent", "tool"]},
            "content": {"type": "string"},
            "metadata": {"type": "object"},
            "created_at": {"type": ["string", "null"], "format": "date-time"},
        },
        {"parts": _PARTS},
    ),
    "allOf": [
        {
            "if": {"properties": {"sender": {"const": sender}}},
            "then": {"properties": {"metadata": metadata}},
        }
        for sender, metadata in (
            ("user", {"type": "object", "maxProperties": 0}),
            ("agent", _AGENT_METADATA),
            ("tool", _TOOL_METADATA),
        )
    ],
}

NATIVE_DATA: dict[str, dict[str, Any]] = {
    "run": _object({"run_id": UUID, "chat_id": UUID, "agent_id": UUID}),
    "message": MESSAGE,
    "token": _object({"message_id": NON_EMPTY, "delta": NON_EMPTY}),
    "tool_call": _object(
        {
            "message_id": NON_EMPTY,
            "tool_call_id": NON_EMPTY,
            "name": NON_EMPTY,
            "args": {"type": "object"},
        }
    ),
    "tool_result": _object(
        {
            "tool_call_id": NON_EMPTY,
            "name": NON_EMPTY,
            "content": {"type": "string"},
            "is_error": {"type": "boolean"},
        }
    ),
    # The run paused: these calls of tools that need approval wait for a decision each
    # (``POST /chats/{id}/approvals``); ``end`` {status: interrupted} follows.
    "approval_required": _object(
        {
            "run_id": UUID,
            "tool_calls": {
                "type": "array",
                "minItems": 1,
                "items": _object({"id": NON_EMPTY, "name": NON_EMPTY, "args": {"type": "object"}}),
            },
        }
    ),
    # Only a safe message goes out; the exception stays in the server's log.
    "error": _object({"code": {"const": "run_failed"}, "message": NON_EMPTY}),
    "end": END_DATA,
}

NATIVE_EVENT: dict[str, Any] = _event_schema(
    {"enum": list(NATIVE_DATA)},
    [({"const": name}, data) for name, data in NATIVE_DATA.items()],
    "One event of a native run: `run` first, `end` last (see the README's streaming protocol)",
)

# --- Agent Protocol (api/wire/protocol.py) -----------------------------------------------------

# A LangChain message as ``model_dump`` gives it (``type``: human, ai, tool, AIMessageChunk …).
LC_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["type", "content"],
    "properties": {
        "type": NON_EMPTY,
        "content": {"type": ["string", "array"]},
        "id": {"type": ["string", "null"]},
    },
}
_LC_MESSAGES = {"type": "array", "items": LC_MESSAGE, "minItems": 1}

# Events of the graph's stream modes; with ``stream_subgraphs`` a subgraph's events carry its
# namespace after the name: ``updates|tools:<task id>``, ``messages|a:1|b:2`` (the official form).
PROTOCOL_STREAMED: dict[str, dict[str, Any]] = {
    # The state, whatever the graph holds.
    "values": ANY_JSON,
    # ``{node: update}``, or ``{"__interrupt__": [...]}`` when the graph pauses.
    "updates": {"type": "object"},
    # ``messages-tuple``: [the message chunk, the metadata of the model call]. Not as
    # ``prefixItems``: schemathesis 4.32.5 rewrites that to a Draft 7 ``items`` array, which its
    # Draft 2020-12 validator then refuses as an invalid schema.
    "messages": {
        "type": "array",
        "items": {"type": "object"},
        "contains": LC_MESSAGE,
        "minItems": 2,
        "maxItems": 2,
    },
    # ``messages`` (legacy): the metadata of each new message, by its id; then the message so far.
    "messages/metadata": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": {
            "type": "object",
            "required": ["metadata"],
            "properties": {"metadata": {"type": "object"}},
        },
    },
    "messages/partial": _LC_MESSAGES,
    "messages/complete": _LC_MESSAGES,
    "custom": ANY_JSON,
    # LangGraph's own: ``{type: checkpoint|task|task_result, timestamp, step, payload}``.
    "debug": {
        "type": "object",
        "required": ["type", "timestamp", "step", "payload"],
        "properties": {
            "type": NON_EMPTY,
            "timestamp": {"type": "string"},
            "step": {"type": "integer"},
        },
    },
    # LangGraph's own task payloads, as the official server forwards them: a task starting
    # (``langgraph.types.TaskPayload``), then its result (``TaskResultPayload``).
    "tasks": {
        "anyOf": [
            {
                "type": "object",
                "required": ["id", "name", "input", "triggers"],
                "properties": {
                    "id": NON_EMPTY,
                    "name": NON_EMPTY,
                    "triggers": {"type": "array", "items": {"type": "string"}},
                    "metadata": {"type": "object"},
                },
            },
            {
                "type": "object",
                "required": ["id", "name", "error", "interrupts", "result"],
                "properties": {
                    "id": NON_EMPTY,
                    "name": NON_EMPTY,
                    "error": {"type": ["string", "null"]},
                    "interrupts": {"type": "array"},
                    "result": {"type": "object"},
                },
            },
        ]
    },
    # LangGraph's checkpoint payload (``langgraph.types.CheckpointPayload``): one per
    # checkpoint the run writes, its id in ``config.configurable.checkpoint_id``.
    "checkpoints": {
        "type": "object",
        "required": ["config", "parent_config", "values", "metadata", "next", "tasks"],
        "properties": {
            "config": {"type": ["object", "null"]},
            "parent_config": {"type": ["object", "null"]},
            "metadata": {"type": "object"},
            "next": {"type": "array", "items": {"type": "string"}},
            "tasks": {"type": "array", "items": {"type": "object"}},
        },
    },
}
PROTOCOL_OWN: dict[str, dict[str, Any]] = {
    "metadata": _object({"run_id": UUID, "attempt": {"type": "integer", "minimum": 1}}),
    # One ``astream_events`` (v2) event: ``on_chain_start``, ``on_chat_model_stream`` …
    "events": {
        "type": "object",
        "required": ["event", "name", "run_id", "parent_ids", "data"],
        "properties": {
            "event": {"type": "string", "pattern": "^on_[a-z_]+$"},
            "name": {"type": "string"},
            "run_id": NON_EMPTY,
            "parent_ids": {"type": "array", "items": {"type": "string"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "metadata": {"type": "object"},
            "data": {"type": "object"},
        },
    },
    # ``error``: the exception's class name (never its text) and a safe message.
    "error": _object({"error": NON_EMPTY, "message": NON_EMPTY}),
    "end": END_DATA,
}

_NAMESPACE = r"(\|.+)?"


def _streamed(name: str) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{name}{_NAMESPACE}$"}


PROTOCOL_EVENT: dict[str, Any] = _event_schema(
    {
        "type": "string",
        "pattern": (f"^({'|'.join(PROTOCOL_OWN)}|({'|'.join(PROTOCOL_STREAMED)}){_NAMESPACE})$"),
    },
    [
        *(({"const": name}, data) for name, data in PROTOCOL_OWN.items()),
        *((_streamed(name), data) for name, data in PROTOCOL_STREAMED.items()),
    ],
    "One event of an Agent Protocol run: `metadata` first, then the requested stream modes' "
    "events (a subgraph's with `|<namespace>` after the name), `error` if it failed, `end` last",
)


# --- a thread's stream (``GET /threads/{id}/stream``) --------------------------------------------

# ``<run id>:<event id>``: the run's own event ids, behind the run they belong to.
THREAD_EVENT_ID: dict[str, Any] = {
    "type": "string",
    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[1-9][0-9]*$",
}


def _with_thread_ids(schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    schema["properties"]["id"] = THREAD_EVENT_ID
    return schema


THREAD_EVENT: dict[str, Any] = {
    "description": "One event of a thread's stream: each run's events as its own stream sends "
    "them (Agent Protocol or native, by the API that started the run), with ids "
    "`<run id>:<event id>`; after each run's `end`, `metadata {status: run_done, run_id}`",
    "anyOf": [
        _with_thread_ids(PROTOCOL_EVENT),
        _with_thread_ids(NATIVE_EVENT),
        _with_thread_ids(
            _event_schema(
                {"const": "metadata"},
                [
                    (
                        {"const": "metadata"},
                        _object({"status": {"const": "run_done"}, "run_id": UUID}),
                    )
                ],
                "A run of the thread has ended (the official server's `run_done`)",
            )
        ),
    ],
}


def sse_content(schema: dict[str, Any]) -> dict[str, Any]:
    """A route's ``responses=`` content for a stream of events that each match ``schema``."""
    return {"text/event-stream": {"schema": copy.deepcopy(schema)}}
