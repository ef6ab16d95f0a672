"""Replay requests and responses."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from api.schemas.common import NotNull, RequestModel, SchemaOnly, text_rules
from api.schemas.messages import ImagePartOut, TextPartOut
from graphs.models import MODEL_NAME_PATTERN, UnknownModel, parse_model_name

ReplayStatus = Literal["pending", "running", "done", "failed", "cancelled", "interrupted"]
TurnStatus = Literal["pending", "running", "success", "error", "cancelled", "interrupted"]


_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


def _runnable(value: str) -> str:
    try:
        parse_model_name(value)
    except UnknownModel as exc:
        # Our own sentence, naming the model and what this server knows.
        raise ValueError(str(exc)) from None
    if _MODEL_NAME.fullmatch(value) is None:
        # What Python's ``$`` lets through and the schema's does not: a trailing newline.
        raise ValueError(f"invalid model name {value!r}")
    return value


# Checked here, not later: a model this server cannot run is a 422 naming the field, before
# anything is created. Not trimmed, so the value is exactly what the schema's pattern accepts.
ReplayModelName = Annotated[
    str,
    text_rules(min_length=3, max_length=200, strip=False),
    AfterValidator(_runnable),
    SchemaOnly(lambda schema: schema.update(pattern=MODEL_NAME_PATTERN)),
]


class ReplayCreate(RequestModel):
    """What to replay the chat against: another agent, another model, or both."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    agent_id: Annotated[UUID | None, NotNull] = Field(
        None, description="The agent that answers (the chat's own agent without it)"
    )
    model_name: Annotated[ReplayModelName | None, NotNull] = Field(
        None,
        description="`provider:model` the agent answers with instead of its own (see "
        "`GET /agents/`); the agent's own model without it",
    )

    @model_validator(mode="after")
    def _check(self) -> ReplayCreate:
        for name in ("agent_id", "model_name"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if self.agent_id is None and self.model_name is None:
            raise ValueError("give `agent_id`, `model_name` or both")
        return self


class Progress(BaseModel):
    done: int = Field(description="Turns whose run ended while the replay went on")
    total: int = Field(description="User messages of the original")


class ToolCall(BaseModel):
    name: str
    args: dict[str, Any]


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class Answer(BaseModel):
    """One side of a turn: what the agent answered the user's message."""

    message_id: str | None = Field(description="Its last agent message (null: none)")
    content: str = Field(description="The text of its last agent message")
    tool_calls: list[ToolCall] = Field(description="Every tool call of the turn, in order")
    usage: Usage = Field(description="Tokens of every model call of the turn")
    latency_ms: float | None = Field(description="Model time of every call of the turn")
    model: str | None


class Vote(BaseModel):
    """Feedback as an agent message's ``metadata.feedback`` shows it."""

    score: Literal[-1, 0, 1]
    comment: str | None
    created_at: datetime
    updated_at: datetime


class OriginalAnswer(Answer):
    feedback: Vote | None = Field(
        description="Your vote on the original answer, as it is now (null: none)"
    )


class TurnMessage(BaseModel):
    id: str = Field(description="The original's user message; the replay's chat keeps its id")
    content: str
    parts: list[TextPartOut | ImagePartOut] | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="Only on a message with images: its parts in order, sent again as they were",
    )


class Turn(BaseModel):
    position: int = Field(description="0 for the first user message")
    message: TurnMessage
    status: TurnStatus = Field(description="Of the turn's run (`pending`: none started yet)")
    run_id: UUID | None = Field(description="The run that answered it in the replay's chat")
    agent_version: int | None = Field(
        description="The agent version that run used (`GET /agents/{id}/versions/{n}`); null "
        "until a run is started"
    )
    original: OriginalAnswer
    new: Answer | None = Field(
        description="What the replay answered, once its run ended (null: not yet, or it "
        "ended before the message reached the chat)"
    )
    similarity: float | None = Field(
        ge=0,
        le=1,
        description="Token-level F1 of the two answers' words (1: the same words), rounded to "
        "4 places; null unless the run succeeded",
    )


class ReplaySummary(BaseModel):
    id: UUID
    status: ReplayStatus
    progress: Progress
    source_chat_id: UUID = Field(description="The chat replayed")
    target_chat_id: UUID | None = Field(
        description="The chat the turns are sent to (null once it was deleted)"
    )
    agent_id: UUID
    model_name: str | None = Field(description="The model override (null: the agent's own)")
    error: str | None = Field(description="Why it failed or was interrupted")
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class ReplayOut(ReplaySummary):
    turns: list[Turn]


class ReplayCancelOut(BaseModel):
    replay_id: UUID
    status: ReplayStatus
    cancelled: bool = Field(description="False when the replay had already ended")
