"""Request bodies of the Agent Protocol's runs (as ``langgraph-sdk`` sends them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from langchain_core.messages import convert_to_messages
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonDict, JsonValue
from pydantic_core import InitErrorDetails, PydanticCustomError

from api.schemas.common import (
    NO_NUL,
    JsonBool,
    JsonInteger,
    MetadataLimits,
    MetadataNulFree,
    NoNul,
    NulFree,
    SchemaOnly,
    json_object_schema,
    json_value_schema,
)
from api.schemas.messages import MAX_MESSAGE_CHARS
from api.wire.protocol import STREAM_MODES
from graphs.runtime.inputs import ProtocolInput

# The messages one input (or state update, or command update) may carry.
MAX_INPUT_MESSAGES = 100
Loc = tuple[int | str, ...]


def _text_length(content: Any) -> int:
    """The characters of a message's text: its string, or its text blocks' (and strings')."""
    if isinstance(content, str):
        return len(content)
    total = 0
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                total += len(block)
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                total += len(block["text"])
    return total


def _fits_message_schema(message: Any) -> bool:
    """Whether ``message`` is what ``MESSAGE`` describes (NUL and length are checked apart):
    the schema and this check say the same, and both are narrower than the coercion."""
    if isinstance(message, str):
        return True
    if not isinstance(message, dict) or "content" not in message:
        return False
    if ("role" in message) == ("type" in message):
        return False
    if message.get("role", message.get("type")) not in _ROLES:
        return False
    content = message["content"]
    if not (
        content is None
        or isinstance(content, str)
        or (isinstance(content, list) and all(isinstance(b, str | dict) for b in content))
    ):
        return False
    if any(key in message and not isinstance(message[key], str) for key in ("id", "name")):
        return False
    # LangChain passes these two to the message as they are: anything but an object fails there.
    if any(key in message and not isinstance(message[key], dict) for key in _OBJECT_KEYS):
        return False
    if "tool_calls" not in message:
        return True
    calls = message["tool_calls"]
    return isinstance(calls, list) and all(
        isinstance(call, dict)
        # Each key of a tool call becomes an argument of LangChain's ``tool_call()``: no others.
        and call.keys() <= _TOOL_CALL_KEYS
        and isinstance(call.get("name"), str)
        and isinstance(call.get("args"), dict)
        and "id" in call
        and isinstance(call["id"], str | None)
        and call.get("type", "tool_call") == "tool_call"
        for call in calls
    )


def _message_problems(messages: Any, loc: Loc) -> list[InitErrorDetails]:
    """What is wrong with ``messages`` (a list of messages, or one), each at its own place:
    too many of them, or a message with more text than the native API takes."""
    places: list[Loc]
    if not isinstance(messages, list):
        messages, places = [messages], [loc]
    else:
        places = [(*loc, index) for index in range(len(messages))]
        if len(messages) > MAX_INPUT_MESSAGES:
            ctx = {"field_type": "List", "max_length": MAX_INPUT_MESSAGES}
            ctx["actual_length"] = len(messages)
            return [InitErrorDetails(type="too_long", loc=loc, input=len(messages), ctx=ctx)]
    problems: list[InitErrorDetails] = []
    for message, place in zip(messages, places, strict=True):
        try:
            # What the graph does with it first: a message it cannot read fails here, before
            # anything is created, instead of inside the run or the state update.
            readable = _fits_message_schema(message)
            if readable:
                convert_to_messages([message])
        except Exception:
            readable = False
        if not readable:
            error_type = PydanticCustomError(
                "message_type",
                "Should be a message: a string, or an object with a content and either a role "
                "or a type (user, human, assistant, ai, system, developer)",
            )
            problems.append(InitErrorDetails(type=error_type, loc=place, input=None))
            continue
        # A message is a string, a [role, content] pair, or an object with a content.
        if isinstance(message, dict):
            content, where = message.get("content"), (*place, "content")
        elif isinstance(message, list) and len(message) == 2:
            content, where = message[1], (*place, 1)
        else:
            content, where = message, place
        length = _text_length(content)
        if length <= MAX_MESSAGE_CHARS:
            continue
        # A string: the error the native API gives for its message (and any string field).
        error: str | PydanticCustomError = "string_too_long"
        if not isinstance(content, str):
            error = PydanticCustomError(
                "message_too_long",
                "Message text should have at most {max_length} characters, not {length}",
                {"max_length": MAX_MESSAGE_CHARS, "length": length},
            )
        ctx = {"max_length": MAX_MESSAGE_CHARS}
        problems.append(InitErrorDetails(type=error, loc=where, input=length, ctx=ctx))
    return problems


def _bounded_messages(value: Any) -> Any:
    """``value``'s messages (``{"messages": …}``, or a list of such updates or of ``[key,
    value]`` pairs) within the native API's limits; the 422 names each message too long."""
    problems: list[InitErrorDetails] = []
    if isinstance(value, dict):
        if "messages" in value:
            problems = _message_problems(value["messages"], ("messages",))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict) and "messages" in item:
                problems += _message_problems(item["messages"], (index, "messages"))
            elif isinstance(item, list) and len(item) == 2 and item[0] == "messages":
                problems += _message_problems(item[1], (index, 1))
    if problems:
        # Raised inside a validator, its errors keep their places, under the field's.
        raise ValidationError.from_exception_data("messages", problems)
    return value


# For fields that may carry messages to the graph: run input, state and command updates.
BoundedMessages = AfterValidator(_bounded_messages)

_ROLES: list[JsonValue] = ["user", "human", "assistant", "ai", "system", "developer"]
_OBJECT_KEYS = ("additional_kwargs", "response_metadata")
_TOOL_CALL_KEYS = {"name", "args", "id", "type"}
_BLOCK: JsonDict = {
    **json_object_schema(json_value_schema()),
    "description": "A content block, e.g. {type: text, text}",
}
_CONTENT: JsonDict = {
    "anyOf": [
        {"type": "string", "maxLength": MAX_MESSAGE_CHARS, "pattern": NO_NUL},
        {
            "type": "array",
            "items": {"anyOf": [{"type": "string", "pattern": NO_NUL}, _BLOCK]},
        },
        {"type": "null"},
    ]
}
# A message as the graph reads it (LangChain's message coercion), in the schema; the validator
# is that coercion itself (``_message_problems``).
MESSAGE: JsonDict = {
    "anyOf": [
        {"type": "string", "maxLength": MAX_MESSAGE_CHARS, "pattern": NO_NUL},
        {
            "type": "object",
            "properties": {
                "role": {"enum": _ROLES},
                "type": {"enum": _ROLES},
                "content": _CONTENT,
                "id": {"type": "string", "pattern": NO_NUL},
                "name": {"type": "string", "pattern": NO_NUL},
                **{key: json_object_schema(json_value_schema()) for key in _OBJECT_KEYS},
                "tool_calls": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "args", "id"],
                        "properties": {
                            "name": {"type": "string", "pattern": NO_NUL},
                            "args": json_object_schema(json_value_schema()),
                            "id": {"type": ["string", "null"]},
                            "type": {"const": "tool_call"},
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "required": ["content"],
            "oneOf": [{"required": ["role"]}, {"required": ["type"]}],
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": json_value_schema(),
        },
    ],
    "description": "A string (a user message) or an object with a role or a type",
}
MESSAGES: JsonDict = {
    "anyOf": [MESSAGE, {"type": "array", "items": MESSAGE, "maxItems": MAX_INPUT_MESSAGES}]
}


def _with_messages(schema: dict[str, Any]) -> None:
    # An object that may hold ``messages``: the graph's input or a state update.
    for variant in schema.get("anyOf", [schema]):
        if variant.get("type") == "object":
            variant.setdefault("properties", {})["messages"] = MESSAGES


WithMessages = SchemaOnly(_with_messages)


class RunCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resume: Annotated[Any, NulFree] = None
    update: Annotated[Any, NulFree, BoundedMessages] = None
    goto: Annotated[str | list[str] | None, NulFree] = None


class RunConfig(BaseModel):
    """What a client may set of the run's config; thread and checkpoint come from the route."""

    model_config = ConfigDict(extra="ignore")

    recursion_limit: Annotated[int, Field(ge=1, le=1000), JsonInteger] | None = None
    tags: Annotated[list[str] | None, NulFree] = Field(None, max_length=50)


class CheckpointRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    checkpoint_id: Annotated[str, NoNul] | None = Field(None, max_length=200)


_STREAM_MODE = {"type": "string", "enum": list(STREAM_MODES)}


# The one rule across fields: not both ``input`` and ``command`` (a null counts as absent).
_INPUT_OR_COMMAND: JsonDict = {
    "not": {
        "required": ["input", "command"],
        "properties": {"input": {"not": {"type": "null"}}, "command": {"not": {"type": "null"}}},
    }
}


class RunCreate(BaseModel):
    """A run: what to send the graph, and how to stream it back.

    Fields the SDK may send that Switchboard has no use for (webhook, feedback_keys, durability,
    after_seconds, langsmith_tracer …) are accepted and ignored, so clients work unchanged.
    """

    model_config = ConfigDict(extra="ignore", json_schema_extra=_INPUT_OR_COMMAND)

    assistant_id: Annotated[str, NoNul] = Field(min_length=1, max_length=200)
    input: Annotated[dict[str, Any] | None, NulFree, BoundedMessages, WithMessages] = None
    command: RunCommand | None = None
    config: RunConfig | None = None
    context: Annotated[dict[str, Any] | None, NulFree] = None
    metadata: Annotated[dict[str, Any] | None, MetadataNulFree, MetadataLimits] = Field(
        None, description="At most 16 KiB as JSON, nested at most 5 levels deep"
    )
    stream_mode: Annotated[
        list[str],
        WithJsonSchema(
            {
                "anyOf": [
                    _STREAM_MODE,
                    {"type": "array", "items": _STREAM_MODE, "maxItems": len(STREAM_MODES)},
                ],
                "default": ["values"],
                "description": "One stream mode or several (repeats count once)",
            }
        ),
    ] = Field(default_factory=lambda: ["values"], max_length=len(STREAM_MODES))
    stream_subgraphs: JsonBool = False
    stream_resumable: JsonBool = False
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] = "delete"
    checkpoint_id: Annotated[str, NoNul] | None = Field(None, max_length=200)
    checkpoint: CheckpointRef | None = None
    interrupt_before: Literal["*"] | list[Annotated[str, NoNul]] | None = None
    interrupt_after: Literal["*"] | list[Annotated[str, NoNul]] | None = None

    @field_validator("stream_mode", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("stream_mode")
    @classmethod
    def _known_modes(cls, value: list[str]) -> list[str]:
        unknown = [mode for mode in value if mode not in STREAM_MODES]
        if unknown:
            raise ValueError(f"unknown stream mode {unknown[0]!r}; use {', '.join(STREAM_MODES)}")
        return list(dict.fromkeys(value)) or ["values"]

    @model_validator(mode="after")
    def _input_or_command(self) -> RunCreate:
        if self.input is not None and self.command is not None:
            raise ValueError("send either input or command, not both")
        return self

    def graph_request(self) -> ProtocolInput:
        """What the run executes, as stored with it."""
        checkpoint = self.checkpoint.checkpoint_id if self.checkpoint else None
        checkpoint_id = self.checkpoint_id or checkpoint
        return ProtocolInput(
            kind="protocol",
            input=self.input,
            command=self.command.model_dump(exclude_none=True) if self.command else None,
            config=self.config.model_dump(exclude_none=True) if self.config else None,
            metadata=self.metadata or {},
            stream_mode=self.stream_mode,
            stream_subgraphs=self.stream_subgraphs,
            checkpoint_id=checkpoint_id,
            interrupt_before=self.interrupt_before,
            interrupt_after=self.interrupt_after,
        )


# The most runs one ``POST /runs/batch`` starts, and one ``POST /runs/cancel`` names.
MAX_BATCH_RUNS = 100
MAX_CANCEL_RUN_IDS = 1000

# One form or the other, as the official schema says (``oneOf``), and stated so that a body
# with both, or with a thread and no runs, is refused by the schema as by the server.
_STATUS_OR_RUNS: JsonDict = {
    "anyOf": [
        {
            "required": ["status"],
            "not": {"anyOf": [{"required": ["thread_id"]}, {"required": ["run_ids"]}]},
        },
        {"required": ["thread_id", "run_ids"], "not": {"required": ["status"]}},
    ]
}


class RunsCancel(BaseModel):
    """``POST /runs/cancel``: the caller's runs with ``status`` (in every thread of theirs),
    or the runs ``run_ids`` of their thread ``thread_id``."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_STATUS_OR_RUNS)

    # Absent rather than null: the clients leave out what they do not send.
    status: Annotated[
        Literal["pending", "running", "all"] | None,
        WithJsonSchema(
            {
                "enum": ["pending", "running", "all"],
                "description": "Every run of yours that is `pending`, `running`, or either",
            }
        ),
    ] = None
    thread_id: Annotated[
        UUID | None,
        WithJsonSchema(
            {
                "type": "string",
                "format": "uuid",
                "description": "Your thread whose runs `run_ids` names",
            }
        ),
    ] = None
    run_ids: Annotated[
        list[UUID] | None,
        WithJsonSchema(
            {
                "type": "array",
                "items": {"type": "string", "format": "uuid"},
                "maxItems": MAX_CANCEL_RUN_IDS,
            }
        ),
    ] = Field(None, max_length=MAX_CANCEL_RUN_IDS)

    @field_validator("status", "thread_id", "run_ids", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("Leave the field out rather than send null")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> RunsCancel:
        if self.status is not None:
            if self.thread_id is not None or self.run_ids is not None:
                raise ValueError(
                    "When providing a 'status', 'thread_id' and 'run_ids' must be omitted"
                )
        elif self.thread_id is None or self.run_ids is None:
            raise ValueError("Must provide either a status or both 'thread_id' and 'run_ids'")
        return self
