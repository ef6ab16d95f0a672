"""Feedback on agent messages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from api.schemas.common import JsonInteger, NoNul, RequestModel, text_rules

MAX_COMMENT_CHARS = 2000
Comment = Annotated[str, text_rules(max_length=MAX_COMMENT_CHARS), NoNul]


class FeedbackIn(RequestModel):
    score: Annotated[Literal[-1, 0, 1], JsonInteger] = Field(
        description="-1 (bad), 0 (neutral) or 1 (good)"
    )
    comment: Comment | None = None


class FeedbackOut(BaseModel):
    message_id: str
    score: Literal[-1, 0, 1]
    comment: str | None
    created_at: datetime
    updated_at: datetime


class VersionVotes(BaseModel):
    version: int | None = Field(description="The agent version whose run wrote the messages")
    up: int
    down: int
    neutral: int
    total: int


class FeedbackSummary(BaseModel):
    agent_id: UUID
    versions: list[VersionVotes] = Field(description="Newest version first")
