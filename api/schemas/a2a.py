"""A2A: the agent card, and the JSON-RPC 2.0 bodies of ``POST /a2a/{assistant_id}`` as the
OpenAPI document states them (the route reads its body itself: JSON-RPC answers a body it
cannot use with an error object, not with a 422)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict, JsonValue

from api.schemas.common import NO_NUL
from api.schemas.messages import MAX_MESSAGE_CHARS


class AgentSkill(BaseModel):
    """What the agent can do (the spec's camelCase names)."""

    id: str
    name: str
    description: str
    tags: list[str]
    examples: list[str]
    inputModes: list[str]
    outputModes: list[str]


class AgentCard(BaseModel):
    """An assistant as an A2A agent: what it is, where to call it (`url`, JSON-RPC), what it
    takes and answers (text), and that calls need the same bearer token as the rest of the
    API."""

    model_config = ConfigDict(extra="allow")

    protocolVersion: str
    name: str
    description: str
    url: str = Field(description="The agent's JSON-RPC endpoint, `…/a2a/{assistant_id}`")
    preferredTransport: str
    version: str
    capabilities: dict[str, Any]
    securitySchemes: dict[str, Any]
    security: list[dict[str, list[str]]]
    defaultInputModes: list[str]
    defaultOutputModes: list[str]
    skills: list[AgentSkill]


class RpcResponse(BaseModel):
    """A JSON-RPC 2.0 response: `result` (a Task, or for `tasks/*` the task) or `error`
    `{code, message}` (-32700 parse error, -32600 invalid request, -32601 method not found,
    -32602 invalid params, -32001 task not found, -32002 task not cancelable, -32004
    unsupported operation, -32005 content type not supported). Errors are HTTP 200, as
    JSON-RPC over HTTP has them."""

    jsonrpc: str = "2.0"
    id: str | int | float | None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


_ID: JsonDict = {"anyOf": [{"type": "string", "maxLength": 200}, {"type": "integer"}]}
_TEXT_PART: JsonDict = {
    "type": "object",
    "required": ["kind", "text"],
    "properties": {
        "kind": {"const": "text"},
        "text": {"type": "string", "pattern": NO_NUL, "maxLength": MAX_MESSAGE_CHARS},
    },
}
_UUID: JsonDict = {"type": "string", "format": "uuid"}
_MESSAGE: JsonDict = {
    "type": "object",
    "required": ["role", "parts", "messageId"],
    "properties": {
        "kind": {"const": "message"},
        "role": {"const": "user"},
        "parts": {"type": "array", "items": _TEXT_PART, "minItems": 1, "maxItems": 100},
        "messageId": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
        "contextId": {**_UUID, "description": "One of your threads (a new one if none)"},
    },
}
_SEND: JsonDict = {
    "type": "object",
    "required": ["jsonrpc", "id", "method", "params"],
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": _ID,
        "method": {"enum": ["message/send", "message/stream"]},
        "params": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": _MESSAGE,
                "configuration": {
                    "type": "object",
                    "properties": {
                        "historyLength": {"type": "integer", "minimum": 0, "maximum": 10000}
                    },
                },
            },
        },
    },
}
_TASK_CALL: JsonDict = {
    "type": "object",
    "required": ["jsonrpc", "id", "method", "params"],
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": _ID,
        "method": {"enum": ["tasks/get", "tasks/cancel"]},
        "params": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "pattern": NO_NUL,
                    "description": "The task id: `<contextId>:<run id>`",
                },
                "historyLength": {"type": "integer", "minimum": 0, "maximum": 10000},
            },
        },
    },
}
RPC_BODY: dict[str, Any] = {
    "required": True,
    "description": "A JSON-RPC 2.0 request. Methods also by their v1.0 names (`SendMessage`, "
    "`SendStreamingMessage`, `GetTask`, `CancelTask`), answered in v1.0's enums",
    "content": {"application/json": {"schema": {"anyOf": [_SEND, _TASK_CALL]}}},
}
_STATE: JsonDict = {
    "type": "object",
    "required": ["state"],
    "properties": {"state": {"type": "string"}},
}
_IN_TASK: JsonDict = {"taskId": {"type": "string"}, "contextId": {"type": "string"}}
_RESULTS: list[JsonValue] = [
    {
        "type": "object",
        "required": ["kind", "id", "contextId", "status"],
        "properties": {"kind": {"const": "task"}, "status": _STATE},
    },
    {
        "type": "object",
        "required": ["kind", "taskId", "contextId", "status", "final"],
        "properties": {
            "kind": {"const": "status-update"}, **_IN_TASK, "status": _STATE,
            "final": {"type": "boolean"},
        },
    },
    {
        "type": "object",
        "required": ["kind", "taskId", "contextId", "artifact"],
        "properties": {"kind": {"const": "artifact-update"}, **_IN_TASK},
    },
    # A v1.0 name's task (``SendStreamingMessage``).
    {"type": "object", "required": ["task"], "properties": {"task": {"type": "object"}}},
]  # fmt: skip
_STREAMED: JsonDict = {
    "type": "object",
    "required": ["jsonrpc", "id"],
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": {"type": ["string", "integer", "number", "null"]},
        "result": {"anyOf": _RESULTS},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        },
    },
    "anyOf": [{"required": ["result"]}, {"required": ["error"]}],
}
STREAM_EVENT: JsonDict = {
    "type": "object",
    "description": "`message/stream`: events whose `data` is each a JSON-RPC response: the "
    "task (`submitted`), status updates (`working`, one per token of the answer, with the "
    "token as its message), the answer as an `artifact-update`, and a last status update "
    "with `final: true` (`completed`, `failed` or `canceled`); or one error",
    "required": ["data"],
    "properties": {
        "event": {"const": "message"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": _STREAMED,
        },
    },
    "additionalProperties": False,
}
