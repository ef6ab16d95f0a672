"""Message and run shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator

from api.schemas.common import (
    WEBHOOK_DESCRIPTION,
    NoNul,
    NotBlank,
    RequestModel,
    ToolArgsLimits,
    ToolArgsNulFree,
    WebhookUrl,
    text_rules,
)

MAX_MESSAGE_CHARS = 32_000
MessageContent = Annotated[
    str, text_rules(min_length=1, max_length=MAX_MESSAGE_CHARS, strip=False), NotBlank
]

MAX_PARTS = 8
MAX_IMAGES = 4
# Only the type is in the pattern: the rest must be base64 of an image of that type, which the
# service checks (its answer names the problem: `invalid_base64`, `invalid_image`,
# `image_too_large`).
DATA_URL_PATTERN = "^data:image/(png|jpeg|gif|webp);base64,"


class TextPart(RequestModel):
    type: Literal["text"]
    text: MessageContent


class ImageUrlPart(RequestModel):
    type: Literal["image"]
    url: str = Field(
        pattern=DATA_URL_PATTERN,
        description="A data URL of a PNG, JPEG, GIF or WebP image: "
        "`data:image/png;base64,<bytes>`, at most `SWITCHBOARD_IMAGE_MAX_BYTES` decoded "
        "(5 MiB by default); the bytes must be an image of that type",
    )


class ImageFilePart(RequestModel):
    type: Literal["image"]
    file_id: UUID = Field(description="An image among the chat's files (`GET /chats/{id}/files`)")


MessagePart = TextPart | ImageUrlPart | ImageFilePart
MessageParts = Annotated[
    list[MessagePart],
    Field(
        min_length=1,
        max_length=MAX_PARTS,
        description=f"A message in parts: text and images (at most {MAX_IMAGES}), in order; "
        "a chat whose agent's model cannot see images answers 422 "
        "`model_cannot_see_images`",
    ),
]


def _content_kind(value: Any) -> str:
    return "parts" if isinstance(value, list) else "text"


# Text or parts, told apart by the JSON type: only that one is validated, so a text too long is
# refused for its length alone (not also for not being a list). Errors are located under the
# kind: ``["body", "content", "text"]``.
Content = Annotated[
    Annotated[MessageContent, Tag("text")] | Annotated[MessageParts, Tag("parts")],
    Discriminator(_content_kind),
]


class MessageCreate(RequestModel):
    content: Content
    on_disconnect: Literal["continue", "cancel"] = Field(
        "continue",
        description="`continue` (default): the run goes on when the client leaves; "
        "`cancel`: stop the run if the client disconnects before it ends",
    )
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = Field(
        "reject",
        description="When the chat already has an active run: `reject` (409 naming it), "
        "`enqueue` (run after it), `interrupt` (stop it, keep what it wrote) or `rollback` "
        "(stop it and remove what it wrote)",
    )
    webhook: WebhookUrl | None = Field(None, description=WEBHOOK_DESCRIPTION)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str | list[MessagePart]) -> str | list[MessagePart]:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be blank")
        return value


# Message ids are the server's (UUIDs) or an Agent Protocol client's; anything longer names
# nothing.
MessageId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
CheckpointIdText = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z-]+$")]


class MessageEdit(RequestModel):
    message_id: MessageId = Field(description="A user message of the chat")
    content: Content = Field(
        description="Its new content: text (the message's images, if it had any, are kept "
        "after it) or parts, which replace all of it"
    )


class ForkCreate(RequestModel):
    checkpoint_id: CheckpointIdText | None = Field(
        None,
        description="Where the fork's history ends (from `GET /chats/{id}/history`); "
        "the latest without it",
    )
    edit: MessageEdit | None = Field(
        None, description="Fork just before this user message and answer its new text"
    )
    on_disconnect: Literal["continue", "cancel"] = "continue"


class Regenerate(RequestModel):
    on_disconnect: Literal["continue", "cancel"] = "continue"


# A tool call's id, as the model gave it.
ToolCallId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]


class Approve(RequestModel):
    tool_call_id: ToolCallId
    action: Literal["approve"]


class Edit(RequestModel):
    tool_call_id: ToolCallId
    action: Literal["edit"]
    args: Annotated[dict[str, Any], ToolArgsNulFree, ToolArgsLimits] = Field(
        description="The arguments the call runs with instead of the model's"
    )


class Reject(RequestModel):
    tool_call_id: ToolCallId
    action: Literal["reject"]
    reason: Annotated[str, text_rules(max_length=2000), NoNul] | None = Field(
        None, description="Why, for the model (it reads the rejection as the call's result)"
    )


class ApprovalCreate(RequestModel):
    decisions: list[Annotated[Approve | Edit | Reject, Field(discriminator="action")]] = Field(
        min_length=1,
        max_length=50,
        description="One decision per tool call waiting for approval, by `tool_call_id`",
    )
    on_disconnect: Literal["continue", "cancel"] = "continue"


class TextPartOut(BaseModel):
    type: Literal["text"]
    text: str


class ImagePartOut(BaseModel):
    type: Literal["image"]
    mime_type: Literal["image/png", "image/jpeg", "image/gif", "image/webp"]
    url: str = Field(pattern=DATA_URL_PATTERN, description="The image as a data URL")


class MessageOut(BaseModel):
    id: str
    chat_id: UUID
    sender: Literal["user", "agent", "tool"]
    content: str = Field(description="The text (of all the text parts of a message in parts)")
    parts: list[TextPartOut | ImagePartOut] | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="Only on a message sent in parts (with images): its parts in order",
    )
    metadata: dict[str, Any]
    created_at: datetime | None


class MessagePage(BaseModel):
    items: list[MessageOut]
    has_more: bool = Field(description="Older messages exist: ask again with before=<items[0].id>")


class RunError(BaseModel):
    code: str
    message: str


class RunAnswer(BaseModel):
    run_id: UUID
    status: str
    messages: list[MessageOut]
    # The counts, and ``estimated: true`` when a provider reported none.
    usage: dict[str, int | bool]
    error: RunError | None = None


class WebhookAttemptOut(BaseModel):
    at: datetime = Field(description="When the attempt started")
    status_code: int | None = Field(
        description="The receiver's HTTP status; null when no answer came"
    )
    error: str | None = Field(
        description="Why no answer came (`ConnectError`, `Timeout`, `name_not_resolved` …), "
        "or `webhook_not_allowed` when the URL no longer passed the SSRF guard; null with a "
        "status code"
    )


class WebhookOut(BaseModel):
    """Where a run's webhook delivery stands."""

    url: str
    status: Literal["pending", "delivered", "failed"] = Field(
        description="`pending` until the run has ended and a 2xx answered (or while another "
        "attempt is due), `delivered`, or `failed` once the attempts ran out or an answer "
        "was neither 2xx, 429 nor 5xx"
    )
    attempts: list[WebhookAttemptOut] = Field(description="Oldest first")


class RunOut(BaseModel):
    id: UUID
    chat_id: UUID
    agent_id: UUID
    agent_version: int
    model_name: str
    status: str
    multitask_strategy: str
    error: str | None
    usage: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    webhook: WebhookOut | None = Field(
        None, description="The run's webhook and its delivery attempts; null without one"
    )


class CheckpointOut(BaseModel):
    """One saved state of a chat's thread."""

    checkpoint_id: str
    parent_checkpoint_id: str | None
    created_at: datetime | None
    step: int | None = Field(description="LangGraph's step counter: -1 for the input, then 0, 1…")
    source: str | None = Field(description="`input`, `loop`, `update` or `fork`")
    next: list[str] = Field(description="The nodes that run next from here (empty when done)")
    message_count: int
    run_id: UUID | None = Field(description="The run that wrote it (null for a state update)")
    agent_version: int | None = Field(
        None,
        description="The agent version that run used (`GET /agents/{id}/versions/{n}`); null "
        "without a run, or for a checkpoint copied from another chat (a fork)",
    )


class HistoryPage(BaseModel):
    items: list[CheckpointOut] = Field(description="Newest first")
    has_more: bool = Field(
        description="Older checkpoints exist: ask again with before=<items[-1].checkpoint_id>"
    )


class ChatState(BaseModel):
    checkpoint_id: str | None = Field(description="null for a chat that has no message yet")
    messages: list[MessageOut]
    next: list[str]
