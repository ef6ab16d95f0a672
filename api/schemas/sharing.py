"""Sharing a chat read-only: with users by email, and by public link."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from api.schemas.auth import Email
from api.schemas.chats import ChatView
from api.schemas.common import RequestModel
from api.schemas.messages import MessageOut

ShareRole = Literal["viewer"]


class ShareCreate(RequestModel):
    email: Email = Field(description="The email of a registered user (not yours)")
    role: ShareRole = Field("viewer", description="`viewer`: read-only, the only role")


class ShareOut(BaseModel):
    user_id: UUID = Field(description="Whom the chat is shared with (revoke with this id)")
    email: str
    role: ShareRole
    created_at: datetime = Field(description="When it was first shared with them")


class SharedChatOut(ChatView):
    shared_at: datetime = Field(description="When it was shared with you")


class ShareLinkOut(BaseModel):
    created_at: datetime = Field(description="When the link was made: it shows the chat as then")
    message_count: int = Field(description="How many messages the link shows")


class ShareLinkCreated(ShareLinkOut):
    token: str = Field(description="The link's secret, shown only now (only its hash is kept)")
    url: str = Field(description="The link's path on this server: `/shared/{token}`")


class SharedChat(BaseModel):
    """What a share link shows: a snapshot of the chat when the link was made."""

    title: str | None
    agent_name: str | None = Field(description="null for a thread no run has bound to an agent")
    shared_at: datetime = Field(description="When the link was made; later messages never show")
    messages: list[MessageOut] = Field(
        description="Oldest first, as `GET /chats/{id}/messages` shows them, except that "
        "`metadata.feedback` is always null (votes are not shared)"
    )
