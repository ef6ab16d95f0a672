"""Chat requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from api.schemas.common import NotBlank, NotNull, RequestModel, text_rules
from api.schemas.messages import RunAnswer

Title = Annotated[str, text_rules(min_length=1, max_length=200), NotBlank]
ChatStatus = Literal["active", "archived"]


class ChatCreate(RequestModel):
    agent_id: UUID
    title: Title | None = None


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
