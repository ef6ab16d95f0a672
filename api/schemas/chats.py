"""Chat requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from api.schemas.common import NotBlank, NotNull, RequestModel, text_rules
from api.schemas.messages import RunAnswer

Title = Annotated[str, text_rules(min_length=1, max_length=200), NotBlank]
ChatStatus = Literal["active", "archived"]


TtlStrategy = Literal["delete", "keep_latest"]
# A hundred years at most: past that a timestamp leaves what Postgres can hold.
TTL_MAX_MINUTES = 525_600 * 100


class ChatTtl(RequestModel):
    """A chat's (a thread's) time to live: it expires `ttl` minutes after it last changed."""

    ttl: Annotated[float, Strict()] = Field(
        ge=0,
        le=TTL_MAX_MINUTES,
        allow_inf_nan=False,
        description="Minutes from now (and from each later change: a run on it ending, a "
        "rename, a patch) until it is swept; 0: at the next sweep",
    )
    strategy: TtlStrategy = Field(
        "delete",
        description="`delete`: it goes with its runs and checkpoints; `keep_latest`: only its "
        "latest checkpoint stays (its messages and state read the same)",
    )


class ThreadTtl(ChatTtl):
    # The Agent Protocol's bodies ignore fields they do not know (api/schemas/protocol.py).
    model_config = ConfigDict(extra="ignore")


class ChatCreate(RequestModel):
    agent_id: UUID
    title: Title | None = None
    ttl: ChatTtl | None = Field(
        None, description="Without it, the server's default retention applies (if any)"
    )


class ChatUpdate(RequestModel):
    title: Title | None = None
    status: Annotated[ChatStatus | None, NotNull] = None

    @model_validator(mode="after")
    def _check(self) -> ChatUpdate:
        if "status" in self.model_fields_set and self.status is None:
            raise ValueError("status cannot be null")
        return self


class ForkedFrom(BaseModel):
    chat_id: UUID = Field(description="The chat this one was forked from")
    checkpoint_id: str | None = Field(
        description="Its checkpoint where this chat's history ends (null: forked before its "
        "first message)"
    )
    message_id: str | None = Field(
        None, description="With an edit: the user message whose text this chat replaced"
    )


class ChatOut(BaseModel):
    id: UUID
    agent_id: UUID | None = Field(
        description="null for a thread created through the Agent Protocol before its first run"
    )
    title: str | None
    status: ChatStatus
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None
    message_count: int
    forked_from: ForkedFrom | None = Field(None, description="Set on a fork")


class ChatOwner(BaseModel):
    id: UUID
    name: str


class ChatView(ChatOut):
    """A chat as its reader sees it (``GET /chats/{id}``): its own or shared with them."""

    access: Literal["owner", "viewer"] = Field(
        description="`owner`: your chat; `viewer`: shared with you, read-only (messages, "
        "history, state; every write and run is a 404)"
    )
    owner: ChatOwner = Field(description="Whose chat it is (a name only, never an email)")


class ForkOut(ChatOut):
    run: RunAnswer | None = Field(
        None, description="With an edit: the answer to the edited message (JSON requests)"
    )
