"""Request bodies of the Agent Protocol's runs (as ``langgraph-sdk`` sends them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.schemas.common import NulFree
from api.wire.protocol import STREAM_MODES
from graphs.runtime.inputs import ProtocolInput


class RunCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resume: Annotated[Any, NulFree] = None
    update: Annotated[Any, NulFree] = None
    goto: Annotated[str | list[str] | None, NulFree] = None


class RunConfig(BaseModel):
    """What a client may set of the run's config; thread and checkpoint come from the route."""

    model_config = ConfigDict(extra="ignore")

    recursion_limit: int | None = Field(None, ge=1, le=1000)
    tags: Annotated[list[str] | None, NulFree] = Field(None, max_length=50)


class CheckpointRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    checkpoint_id: str | None = Field(None, max_length=200)


class RunCreate(BaseModel):
    """A run: what to send the graph, and how to stream it back.

    Fields the SDK may send that Switchboard has no use for (webhook, feedback_keys, durability,
    after_seconds, langsmith_tracer …) are accepted and ignored, so clients work unchanged.
    """

    model_config = ConfigDict(extra="ignore")

    assistant_id: str = Field(min_length=1, max_length=200)
    input: Annotated[dict[str, Any] | None, NulFree] = None
    command: RunCommand | None = None
    config: RunConfig | None = None
    context: Annotated[dict[str, Any] | None, NulFree] = None
    metadata: Annotated[dict[str, Any] | None, NulFree] = None
    stream_mode: list[str] = Field(default_factory=lambda: ["values"], max_length=7)
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] = "delete"
    checkpoint_id: str | None = Field(None, max_length=200)
    checkpoint: CheckpointRef | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None

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
