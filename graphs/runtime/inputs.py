"""What a run executes, as stored in ``runs.input``: a native message or an Agent Protocol run.

The column is JSON written by one version of the server and read back by whichever process
claims the run, maybe another version; it is validated on the way back in, so a row that does
not parse ends its run with a clear error instead of crashing the process that claimed it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from langchain_core.messages.utils import convert_to_messages
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)

from graphs import tracing


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The user's onboarding profile at send time, for the personalized prompt.
    profile: dict[str, Any] | None = None
    # With tracing on, the W3C ``traceparent`` of the request span the input was made in: the
    # run's span is that request's child in whichever process claims the run.
    trace_parent: str | None = Field(default_factory=tracing.current_traceparent)

    @model_serializer(mode="wrap")
    def _stored(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Without a trace, the row is what it was before the field existed, so a process of
        # an older version claims it as before.
        data = handler(self)
        if isinstance(data, dict) and data.get("trace_parent") is None:
            data.pop("trace_parent", None)
        return data


class NativeInput(_Input):
    kind: Literal["native"] = "native"
    # The message's text (all of it, for a message in parts), and for a message with images
    # its parts as LangChain content blocks, sent to the model instead (rows from before images
    # have none).
    content: str
    parts: list[dict[str, Any]] | None = None
    # Set when a message is answered again (an edit in a fork, a regenerate): the checkpoint
    # the run starts from instead of the thread's latest (a branch of the thread), and the id
    # the message keeps. A replay sets the id on every message it sends (the original's), so
    # a turn cut short by a restart is found in the thread and answered again, not resent.
    checkpoint_id: str | None = None
    message_id: str | None = None
    # Another model for this run only (a replay "with model X"): the agent's prompt and tools,
    # this model. Checked by the API (``graphs.models.parse_model_name``) before it is stored.
    model_name: str | None = None
    # Decisions on tool calls waiting for approval (``graphs.approval.resume_value``): the run
    # resumes the paused turn instead of answering ``content`` (then empty).
    resume: dict[str, Any] | None = None


class ProtocolInput(_Input):
    kind: Literal["protocol"]
    input: dict[str, Any] | None = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    stream_mode: list[str] = Field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    checkpoint_id: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None


class _Tagged(BaseModel):
    value: Annotated[NativeInput | ProtocolInput, Field(discriminator="kind")]

    @model_validator(mode="before")
    @classmethod
    def _native_by_default(cls, data: Any) -> Any:
        # Native runs stored before the tag existed carry no ``kind``.
        value = data.get("value") if isinstance(data, dict) else None
        if isinstance(value, dict) and "kind" not in value:
            return {"value": {**value, "kind": "native"}}
        return data


RunInput = NativeInput | ProtocolInput
_adapter = TypeAdapter(_Tagged)


def model_override(run_input: RunInput) -> str | None:
    """The model the run uses instead of its agent's, if any (only native runs have one)."""
    return run_input.model_name if isinstance(run_input, NativeInput) else None


class InvalidRunInput(ValueError):
    """A stored run input that is neither a native message nor a protocol run."""


def parse_input(raw: Any) -> RunInput:
    """The stored input as its type; ``InvalidRunInput`` names the first problem."""
    try:
        value = _adapter.validate_python({"value": raw}).value
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "input"
        raise InvalidRunInput(f"{where}: {first['msg']}") from None
    if not (isinstance(raw, dict) and "trace_parent" in raw):
        # Stored without one: not the span of whatever claims it now (another run's, maybe).
        value.trace_parent = None
    return value


def stamp_messages(value: Any) -> Any:
    """Input messages as messages with ids and a ``created_at``, like the native API's."""
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        return value
    now = datetime.now(UTC).isoformat()
    messages = convert_to_messages(value["messages"])
    for message in messages:
        if message.id is None:
            message.id = str(uuid.uuid4())
        message.response_metadata.setdefault("created_at", now)
    return {**value, "messages": messages}
