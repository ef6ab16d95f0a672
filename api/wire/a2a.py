"""A2A's wire format: JSON-RPC 2.0 envelopes, and a task's updates as ``text/event-stream``.

Answers are written in the A2A spec's names (``message/send``, roles ``user``/``agent``,
states ``completed``…). A call by the v1.0 method names (``SendMessage``…) is answered as the
official server answers them: roles ``ROLE_*``, states ``TASK_STATE_*``, and what
``SendMessage`` or ``SendStreamingMessage`` answers wrapped by its kind (``{"task": …}``,
``{"statusUpdate": …}``, ``{"artifactUpdate": …}``) as v1.0's ``StreamResponse`` has it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.wire.sse import PING_SECONDS, SSE_HEADERS

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005

# Each method by its spec name and its v1.0 name, as the official server takes both.
METHODS = {
    "message/send": "message/send",
    "message/stream": "message/stream",
    "tasks/get": "tasks/get",
    "tasks/cancel": "tasks/cancel",
    "SendMessage": "message/send",
    "SendStreamingMessage": "message/stream",
    "GetTask": "tasks/get",
    "CancelTask": "tasks/cancel",
}
_V1_ROLES = {"user": "ROLE_USER", "agent": "ROLE_AGENT"}
_V1_STATES = {
    "submitted": "TASK_STATE_SUBMITTED",
    "working": "TASK_STATE_WORKING",
    "completed": "TASK_STATE_COMPLETED",
    "failed": "TASK_STATE_FAILED",
    "canceled": "TASK_STATE_CANCELED",
    "input-required": "TASK_STATE_INPUT_REQUIRED",
    "rejected": "TASK_STATE_REJECTED",
}
V1_ROLES_IN = {v1: spec for spec, v1 in _V1_ROLES.items()}

RpcId = str | int | float | None


class RpcError(Exception):
    """A JSON-RPC error object: what a call is answered with instead of a result."""

    def __init__(self, code: int, message: str, rpc_id: RpcId = None):
        super().__init__(message)
        self.code, self.message, self.rpc_id = code, message, rpc_id


@dataclass(frozen=True)
class Call:
    """A JSON-RPC request: its ``id``, its method by the spec's name, its ``params``, and
    whether it came by a v1.0 name (answered in v1.0's enums)."""

    id: RpcId
    method: str
    params: dict[str, Any]
    v1: bool


def parse_call(body: bytes) -> Call:
    """The request in ``body``; ``RpcError`` (with the id, when one could be read) for
    what JSON-RPC 2.0 calls a parse error, an invalid request, an unknown method or params
    that are not an object."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RpcError(PARSE_ERROR, "Parse error: the body is not valid JSON", None) from None
    if not isinstance(message, dict):
        raise RpcError(INVALID_REQUEST, "Invalid request: expected a JSON-RPC request object", None)
    rpc_id = message.get("id")
    if isinstance(rpc_id, bool) or not isinstance(rpc_id, str | int | float | None):
        raise RpcError(
            INVALID_REQUEST, "Invalid request: id must be a string, number or null", None
        )
    if message.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid request: jsonrpc must be "2.0"', rpc_id)
    method = message.get("method")
    if not isinstance(method, str):
        raise RpcError(INVALID_REQUEST, "Invalid request: method must be a string", rpc_id)
    if method not in METHODS:
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method[:100]}", rpc_id)
    params = message.get("params", {})
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: params must be an object", rpc_id)
    return Call(rpc_id, METHODS[method], params, v1=METHODS[method] != method)


def error_body(rpc_id: RpcId, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": error.code, "message": error.message}}


# v1.0's ``StreamResponse`` (and ``SendMessageResponse``) name what they hold by a field.
_V1_FIELDS = {
    "task": "task",
    "message": "message",
    "status-update": "statusUpdate",
    "artifact-update": "artifactUpdate",
}


def result_body(call: Call, result: dict[str, Any]) -> dict[str, Any]:
    if call.v1:
        result = _to_v1(result)
        if call.method in ("message/send", "message/stream"):
            # Every update, not only the task as the official server wraps: a v1.0 client
            # (``a2a-sdk`` 1.x) reads an unwrapped status or artifact update as empty.
            result = {_V1_FIELDS[result["kind"]]: result}
    return {"jsonrpc": "2.0", "id": call.id, "result": result}


def _to_v1(data: Any) -> Any:
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key == "role" and isinstance(value, str):
                out[key] = _V1_ROLES.get(value, value)
            elif key == "state" and isinstance(value, str):
                out[key] = _V1_STATES.get(value, value)
            else:
                out[key] = _to_v1(value)
        return out
    if isinstance(data, list):
        return [_to_v1(item) for item in data]
    return data


def json_answer(body: dict[str, Any]) -> JSONResponse:
    """A JSON-RPC response. Errors too are HTTP 200: JSON-RPC carries them in the body, and
    A2A clients (``a2a-sdk``) read an HTTP error status as a transport failure instead."""
    return JSONResponse(body)


def _frame(body: dict[str, Any]) -> bytes:
    # orjson leaves U+2028/U+2029 raw, which some SSE parsers take for line ends.
    data = orjson.dumps(body, default=str).replace(b"\xe2\x80\xa8", b"\\u2028")
    return b"data: " + data.replace(b"\xe2\x80\xa9", b"\\u2029") + b"\r\n\r\n"


async def _frames(bodies: AsyncIterator[dict[str, Any]]) -> AsyncIterator[ServerSentEvent | bytes]:
    yield ServerSentEvent(comment="ping")
    async for body in bodies:
        yield _frame(body)


def stream_answer(
    bodies: AsyncIterator[dict[str, Any]], shutdown: tuple[anyio.Event, float] | None = None
) -> EventSourceResponse:
    """``message/stream``'s answer: each JSON-RPC response as one event's ``data``, the
    stream's pings and headers as a run's stream has them."""
    event, grace = shutdown if shutdown is not None else (None, 0.0)
    return EventSourceResponse(
        _frames(bodies),
        headers=SSE_HEADERS,
        ping=PING_SECONDS,
        ping_message_factory=lambda: ServerSentEvent(comment="ping"),
        shutdown_event=event,
        shutdown_grace_period=grace + 5 if event is not None else 0,
    )
