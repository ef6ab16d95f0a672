"""Chat exports and imports: the records of a JSON Lines export, and what an import takes.

An export is a ``chat`` header record (the chat, its agent) followed by one ``message`` record
per message, oldest first; the JSON format is the header with the messages in ``messages``.
What an import takes is looser where a person writing an evaluation set by hand could not know
a value (ids, times, counts are optional and ignored), and as strict as the export about the
rest: unknown fields are refused, so a typo is a 422, not silently dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    Strict,
    model_validator,
)
from pydantic_core import PydanticCustomError

from api.schemas.chats import ChatOut, ChatStatus, Title
from api.schemas.common import (
    JsonBool,
    JsonInteger,
    NoNul,
    RequestModel,
    SchemaOnly,
    ToolArgsLimits,
    ToolArgsNulFree,
)
from api.schemas.feedback import Comment
from api.schemas.messages import (
    DATA_URL_PATTERN,
    MAX_PARTS,
    ImagePartOut,
    TextPartOut,
)

# The version of the record format; an import refuses any other.
FORMAT_VERSION: Literal[1] = 1

Text = Annotated[str, NoNul]
NonEmptyText = Annotated[str, Field(min_length=1), NoNul]
Count = Annotated[int, Field(ge=0), JsonInteger]
# JSON numbers only (pydantic's lax mode would take `true` and `"1.5"`).
Milliseconds = Annotated[float, Strict(), Field(ge=0)]


def _text_time(value: Any) -> Any:
    # JSON has no time type: a time is RFC 3339 text (pydantic's lax mode would also take a
    # number, as seconds since 1970).
    if not isinstance(value, str | datetime):
        raise PydanticCustomError("datetime_type", "Input should be a date-time string")
    return value


Time = Annotated[AwareDatetime, BeforeValidator(_text_time)]
Version = Annotated[Literal[1], JsonInteger]


# What an export writes.


class ExportAgent(BaseModel):
    """The agent of an exported chat, as it is at export time."""

    id: UUID
    slug: str = Field(description="Its stable name, the same on every server that seeds it")
    name: str
    version: int = Field(description="Bumped by every update of the agent")
    system_prompt: str
    model_name: str | None = Field(description="`provider:model`; null: the server's default")
    tools_enabled: list[str]


class ChatHeader(BaseModel):
    """The first record of an exported chat."""

    type: Literal["chat"] = "chat"
    format_version: Literal[1] = Field(FORMAT_VERSION, description="Of this record format")
    exported_at: datetime
    chat: ChatOut
    agent: ExportAgent | None = Field(
        description="null for an Agent Protocol thread no run has bound to an agent yet"
    )


class MessageRecord(BaseModel):
    """One message of an exported chat: the Message shape (`GET /chats/{id}/messages`, feedback
    in `metadata.feedback` of agent messages) with `type: "message"`."""

    type: Literal["message"] = "message"
    id: str
    chat_id: UUID
    sender: Literal["user", "agent", "tool"]
    content: str
    parts: list[TextPartOut | ImagePartOut] | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="Only on a message sent in parts (with images): its parts in order",
    )
    metadata: dict[str, Any]
    created_at: datetime | None


class ChatExport(ChatHeader):
    """A chat exported as one JSON document: the header record with the message records."""

    messages: list[MessageRecord] = Field(description="Oldest first")


# What an import takes.


class ForkedFromIn(RequestModel):
    chat_id: UUID
    checkpoint_id: Text | None = None
    message_id: Text | None = None


class ChatInfoIn(RequestModel):
    """The exported chat. Only `title` and `status` carry over: the new chat has its own id and
    times, and its counts are those of the messages imported."""

    id: UUID | None = None
    agent_id: UUID | None = None
    title: Title | None = None
    status: ChatStatus = "active"
    created_at: Time | None = None
    updated_at: Time | None = None
    last_message_at: Time | None = None
    message_count: Count | None = None
    forked_from: ForkedFromIn | None = None


class AgentRefIn(RequestModel):
    """Which agent of this server the chat goes to: the one with this `id`, else the one with
    this `slug`. The other fields are for the reader and are not compared."""

    id: UUID | None = None
    slug: Annotated[str, Field(min_length=1, max_length=200), NoNul] | None = None
    name: Text | None = None
    version: Annotated[int, JsonInteger] | None = None
    system_prompt: Text | None = None
    model_name: Text | None = None
    tools_enabled: list[Text] | None = None

    model_config = {
        "json_schema_extra": {
            "anyOf": [
                {"required": ["id"], "properties": {"id": {"type": "string"}}},
                {"required": ["slug"], "properties": {"slug": {"type": "string"}}},
            ]
        }
    }

    @model_validator(mode="after")
    def _named(self) -> AgentRefIn:
        if self.id is None and self.slug is None:
            raise ValueError("the agent needs an `id` or a `slug`")
        return self


class ChatHeaderIn(RequestModel):
    """A `chat` record: it starts a chat, whose messages are the records after it."""

    type: Literal["chat"]
    format_version: Version = FORMAT_VERSION
    exported_at: Time | None = None
    chat: ChatInfoIn = Field(default_factory=ChatInfoIn)
    agent: AgentRefIn | None = Field(
        description="null: a chat without an agent (an Agent Protocol thread before its run)"
    )


class FeedbackRecordIn(RequestModel):
    score: Annotated[Literal[-1, 0, 1], JsonInteger]
    comment: Comment | None = None
    created_at: Time | None = Field(None, description="Kept; the import's time if null")
    updated_at: Time | None = Field(None, description="Kept; `created_at` if null")


class UsageIn(RequestModel):
    input_tokens: Count
    output_tokens: Count
    total_tokens: Count
    estimated: Literal[True] | None = Field(
        None, description="`true`: estimated, as the provider reported no usage"
    )


class ToolCallIn(RequestModel):
    id: NonEmptyText = Field(description="Unique within the chat; tool results name it")
    name: NonEmptyText
    args: Annotated[dict[str, Any], ToolArgsNulFree, ToolArgsLimits]


class UserMetadataIn(RequestModel):
    """A user message has no metadata."""


class CitationIn(RequestModel):
    """A passage a knowledge search found for the answer (kept as it was exported)."""

    document_id: UUID
    title: Text
    chunk_id: UUID


class AgentMetadataIn(RequestModel):
    model: Text | None = None
    usage: UsageIn | None = None
    latency_ms: Milliseconds | None = None
    finish_reason: Text | None = None
    tool_calls: list[ToolCallIn] = Field(default_factory=list)
    feedback: FeedbackRecordIn | None = None
    # Passages the answer cited (``knowledge_search``).
    citations: Annotated[list[CitationIn], Field(max_length=1000)] | None = None


class ToolMetadataIn(RequestModel):
    tool_call_id: NonEmptyText = Field(description="A tool call of an earlier agent message")
    name: Text | None = None
    is_error: JsonBool = False


class _MessageIn(RequestModel):
    type: Literal["message"]
    id: Text | None = Field(None, description="Ignored: imported messages get new ids")
    chat_id: UUID | None = Field(None, description="Ignored")
    content: Text
    created_at: Time | None = Field(None, description="Kept; the import's time if null")


class TextPartIn(RequestModel):
    type: Literal["text"]
    text: Text


class ImagePartIn(RequestModel):
    type: Literal["image"]
    mime_type: Literal["image/png", "image/jpeg", "image/gif", "image/webp"]
    url: str = Field(
        pattern=DATA_URL_PATTERN,
        description="A base64 data URL of an image of type `mime_type` (its bytes are checked)",
    )


class UserMessageIn(_MessageIn):
    sender: Literal["user"]
    metadata: UserMetadataIn = Field(default_factory=UserMetadataIn)
    parts: list[TextPartIn | ImagePartIn] | None = Field(
        None,
        min_length=1,
        max_length=MAX_PARTS,
        description="A message sent in parts, as exported: the imported message is these "
        "parts, and `content` (their text) is not used",
    )


class AgentMessageIn(_MessageIn):
    sender: Literal["agent"]
    metadata: AgentMetadataIn = Field(default_factory=AgentMetadataIn)


class ToolMessageIn(_MessageIn):
    sender: Literal["tool"]
    metadata: ToolMetadataIn


def _without_discriminator(json_schema: dict[str, Any]) -> None:
    # The branches' `sender` constants already tell them apart; the `discriminator` hint on top
    # is what schemathesis (4.32) cannot build arrays from in its stateful phase, once a link
    # puts a value into an item ("Cannot generate an array with 1 demanded elements").
    json_schema.pop("discriminator", None)


# Validated as a tagged union (by `sender`: one precise error, not one per branch).
MessageRecordIn = Annotated[
    UserMessageIn | AgentMessageIn | ToolMessageIn,
    Field(discriminator="sender"),
    SchemaOnly(_without_discriminator),
]


class ChatDocumentIn(ChatHeaderIn):
    """A chat as one JSON document (what `format=json` exports)."""

    messages: list[MessageRecordIn] = Field(default_factory=list, description="Oldest first")


class ImportOut(BaseModel):
    chats: list[ChatOut] = Field(description="The chats created, in the order of the import")
